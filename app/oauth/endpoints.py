"""The introspection (RFC 7662) and revocation (RFC 7009) endpoints, and the
authorization server assembled from the pieces in ``server``."""

from __future__ import annotations

from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask

from app.config import Settings
from app.oauth.server import (
    AUTH_METHODS,
    DepartmentClientCredentialsGrant,
    DepartmentTokenGenerator,
    TokenState,
    TokenStore,
    derive_signing_key,
    query_client,
)


class _StoreLookup:
    """What both token endpoints share: how clients authenticate, and finding a
    token in the store (one token type, so the hint is not needed)."""

    CLIENT_AUTH_METHODS = AUTH_METHODS
    store: TokenStore

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenState | None:
        return self.store.find(token_string)


class DepartmentIntrospectionEndpoint(_StoreLookup, IntrospectionEndpoint):
    """RFC 7662; a client may introspect only the tokens issued to itself."""

    def __init__(self, server: AuthorizationServer, store: TokenStore) -> None:
        super().__init__(server)
        self.store = store

    def check_permission(self, token: TokenState, client: ClientMixin, request: Any) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: TokenState) -> dict[str, Any]:
        return {
            "active": True,
            "token_type": "Bearer",
            "client_id": token.client_id,
            "scope": token.scope,
            "sub": token.client_id,
            "aud": token.audience,
            "iss": self.store.issuer,
            "jti": token.jti,
            "exp": token.expires_at,
            "iat": token.issued_at,
        }


class DepartmentRevocationEndpoint(_StoreLookup, RevocationEndpoint):
    """RFC 7009; unknown tokens answer 200, another client's token answers invalid_grant."""

    def __init__(self, server: AuthorizationServer, store: TokenStore) -> None:
        super().__init__(server)
        self.store = store

    def revoke_token(self, token: TokenState, request: Any) -> None:
        self.store.revoke(token.jti)


def create_server(app: Flask, settings: Settings) -> AuthorizationServer:
    store = TokenStore(settings.oauth_issuer, derive_signing_key(settings.JWT_SECRET))
    server = AuthorizationServer(query_client=query_client, save_token=store.save)
    server.init_app(app)
    # init_app installs an opaque-token generator; ours replaces it.
    server.register_token_generator(
        "default", DepartmentTokenGenerator(store.issuer, store.key, settings.OAUTH_TOKEN_TTL)
    )
    server.register_grant(DepartmentClientCredentialsGrant)
    server.register_endpoint(DepartmentIntrospectionEndpoint(server, store))
    server.register_endpoint(DepartmentRevocationEndpoint(server, store))
    return server
