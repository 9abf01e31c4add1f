"""/oauth/* in the OpenAPI document. The endpoints are Authlib's (app/oauth), not
flask-smorest views, so their contract is written out here: form-encoded
requests, client authentication by HTTP Basic or form fields, and errors in
OAuth's own JSON format (RFC 6749 section 5.2), which OAuth clients expect."""

from __future__ import annotations

from typing import Any

FORM = "application/x-www-form-urlencoded"
# HTTP Basic, or ({}) client_id and client_secret in the form.
CLIENT_AUTH: list[dict[str, list[str]]] = [{"oauthClientBasic": []}, {}]
NO_STORE = {"Cache-Control": {"schema": {"type": "string"}, "description": "no-store"}}

OAUTH_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "example": "invalid_client"},
        "error_description": {"type": "string"},
    },
}
TOKEN = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in"],
    "properties": {
        "access_token": {"type": "string", "description": "an RFC 9068 JWT"},
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "expires_in": {"type": "integer"},
        "scope": {"type": "string"},
    },
}
INTROSPECTION = {
    "type": "object",
    "required": ["active"],
    "properties": {
        "active": {"type": "boolean"},
        "client_id": {"type": "string"},
        "scope": {"type": "string"},
        "token_type": {"type": "string"},
        "exp": {"type": "integer"},
        "iat": {"type": "integer"},
        "sub": {"type": "string"},
        "aud": {"type": "string"},
        "iss": {"type": "string"},
    },
}
CLIENT_FIELDS = {
    "client_id": {"type": "string"},
    "client_secret": {"type": "string"},
}
TOKEN_FORM = {
    "type": "object",
    "properties": {"token": {"type": "string"}, "token_type_hint": {"type": "string"}},
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": NO_STORE,
        "content": {"application/json": {"schema": schema}},
    }


def _errors() -> dict[str, Any]:
    return {
        "400": _json(OAUTH_ERROR, "invalid_request, unsupported_grant_type, invalid_scope..."),
        "401": _json(OAUTH_ERROR, "invalid_client (WWW-Authenticate: Basic)"),
    }


def _operation(
    op_id: str, summary: str, form: dict[str, Any], ok: dict[str, Any]
) -> dict[str, Any]:
    return {
        "post": {
            "operationId": op_id,
            "summary": summary,
            "tags": ["OAuth 2.0"],
            "security": CLIENT_AUTH,
            "requestBody": {"required": True, "content": {FORM: {"schema": form}}},
            "responses": {"200": ok, **_errors()},
        }
    }


OAUTH_PATHS: dict[str, dict[str, Any]] = {
    "/oauth/token": _operation(
        "oauthToken",
        "An access token for a department's client (client credentials, RFC 6749 4.4)",
        {
            "type": "object",
            "properties": {
                "grant_type": {"type": "string", "enum": ["client_credentials"]},
                "scope": {"type": "string"},
                **CLIENT_FIELDS,
            },
        },
        _json(TOKEN, "the token"),
    ),
    "/oauth/introspect": _operation(
        "oauthIntrospect",
        "Whether a token is active, and its claims (RFC 7662)",
        TOKEN_FORM,
        _json(INTROSPECTION, "the token's state"),
    ),
    "/oauth/revoke": _operation(
        "oauthRevoke",
        "Revoke a token (RFC 7009); unknown tokens succeed too",
        TOKEN_FORM,
        _json({"type": "object"}, "revoked (or was never valid)"),
    ),
}

SECURITY_SCHEMES = {
    "oauthClientBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "OAuth client_id and client_secret (client_secret_basic)",
    }
}
