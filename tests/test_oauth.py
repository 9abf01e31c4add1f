"""The built-in authorization server and its provider, against real PostgreSQL and HTTP."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import OctKey
from sqlalchemy import func, select, update

from app.oauth.models import OAuthClient, OAuthToken, verify_secret
from app.oauth.server import derive_signing_key, purge_expired_tokens
from app.persistence.database import db
from app.providers.base import CheckResult, ProviderError
from app.providers.oauth_builtin import SECRET_NAME, BuiltinOAuthProvider
from tests.support.oauth_app import (
    TEST_ISSUER,
    TEST_JWT_SECRET,
    MemorySecrets,
    ServedApp,
    create_oauth_app,
    department_context,
    oauth_settings,
    throwaway_database,
)

TTL = 600
HS256 = ["HS256"]


@pytest.fixture(scope="module")
def served() -> Iterator[ServedApp]:
    with throwaway_database() as url:
        flask_app = create_oauth_app(oauth_settings(url, OAUTH_TOKEN_TTL=TTL))
        with ServedApp(flask_app) as server:
            yield server


@pytest.fixture
def provider(served: ServedApp) -> BuiltinOAuthProvider:
    return BuiltinOAuthProvider(token_url=served.token_url)


def new_department_id() -> str:
    return f"dept{uuid.uuid4().hex[:10]}"


def client_row(client_id: str) -> OAuthClient | None:
    with db.transaction() as session:
        return session.get(OAuthClient, client_id)


def get_token(served: ServedApp, client_id: str, secret: str, **data: str) -> requests.Response:
    return requests.post(
        served.token_url,
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", **data},
        timeout=10,
    )


def access_token(served: ServedApp, client_id: str, secret: str) -> str:
    response = get_token(served, client_id, secret)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def introspect(served: ServedApp, client_id: str, secret: str, token: str) -> dict:
    response = requests.post(
        f"{served.base_url}/oauth/introspect",
        auth=(client_id, secret),
        data={"token": token},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def revoke(served: ServedApp, client_id: str, secret: str, token: str) -> requests.Response:
    return requests.post(
        f"{served.base_url}/oauth/revoke",
        auth=(client_id, secret),
        data={"token": token},
        timeout=10,
    )


def provisioned(provider: BuiltinOAuthProvider, tools: list[str] | None = None):
    context = department_context(new_department_id(), tools or ["gmail"])
    outputs = provider.create(context)
    return context, outputs, context.secrets.get(SECRET_NAME)


# -- create ---------------------------------------------------------------------


def test_create_registers_client_and_stores_only_a_hash(provider: BuiltinOAuthProvider) -> None:
    context, outputs, secret = provisioned(provider, ["gmail", "web_search"])

    client_id = f"dept-{context.department_id}"
    assert outputs == {
        "clientId": client_id,
        "scopes": ["tools:gmail", "tools:web_search"],
        "audience": context.department_id,
    }
    assert secret and len(secret) >= 40
    row = client_row(client_id)
    assert row is not None and row.revoked_at is None
    assert row.department_id == context.department_id
    assert row.audience == context.department_id
    assert row.grant_types == ["client_credentials"]
    assert row.secret_hash.startswith("hmac-sha256$")
    assert secret not in row.secret_hash
    assert verify_secret(secret, row.secret_hash)
    assert not verify_secret(secret + "x", row.secret_hash)


def test_create_twice_keeps_client_and_secret(provider: BuiltinOAuthProvider) -> None:
    context, first, secret = provisioned(provider)
    first_hash = client_row(first["clientId"]).secret_hash

    second = provider.create(context)

    assert second == first
    assert context.secrets.get(SECRET_NAME) == secret
    assert client_row(first["clientId"]).secret_hash == first_hash
    with db.transaction() as session:
        count = session.scalar(
            select(func.count()).where(OAuthClient.department_id == context.department_id)
        )
    assert count == 1


def test_create_reuses_a_secret_already_in_the_store(provider: BuiltinOAuthProvider) -> None:
    secrets = MemorySecrets()
    secrets.put(SECRET_NAME, "pre-existing-secret-" + "s" * 30)
    context = department_context(new_department_id(), ["gmail"], secrets)

    outputs = provider.create(context)

    assert secrets.get(SECRET_NAME) == "pre-existing-secret-" + "s" * 30
    assert verify_secret(secrets.get(SECRET_NAME), client_row(outputs["clientId"]).secret_hash)


def test_concurrent_creates_converge_on_one_client(provider: BuiltinOAuthProvider) -> None:
    context = department_context(new_department_id(), ["gmail"])
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: provider.create(context), range(4)))

    assert all(result == results[0] for result in results)
    row = client_row(results[0]["clientId"])
    assert verify_secret(context.secrets.get(SECRET_NAME), row.secret_hash)


def test_scopes_follow_enabled_tools(provider: BuiltinOAuthProvider, served: ServedApp) -> None:
    context, outputs, secret = provisioned(provider, ["gmail"])
    assert outputs["scopes"] == ["tools:gmail"]

    context.config["enabledTools"] = ["google_drive", "database_query"]
    outputs = provider.create(context)

    assert outputs["scopes"] == ["tools:database_query", "tools:google_drive"]
    assert client_row(outputs["clientId"]).scopes == outputs["scopes"]
    token = get_token(served, outputs["clientId"], secret).json()
    assert token["scope"] == "tools:database_query tools:google_drive"

    context.config["enabledTools"] = []
    assert provider.create(context)["scopes"] == []


def test_create_refuses_unknown_tools_and_bad_ids(provider: BuiltinOAuthProvider) -> None:
    with pytest.raises(ProviderError, match="unknown tool"):
        provider.create(department_context(new_department_id(), ["telepathy"]))
    with pytest.raises(ProviderError, match="invalid departmentId"):
        provider.create(department_context("Bad:Id", ["gmail"]))


# -- token endpoint ------------------------------------------------------------------


def test_token_endpoint_issues_signed_jwt_with_right_claims(
    provider: BuiltinOAuthProvider, served: ServedApp
) -> None:
    context, outputs, secret = provisioned(provider, ["gmail", "google_calendar"])
    before = int(time.time())

    response = get_token(served, outputs["clientId"], secret)

    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == TTL
    assert "refresh_token" not in body
    key = derive_signing_key(TEST_JWT_SECRET)
    decoded = jwt.decode(body["access_token"], key, algorithms=HS256)
    jwt.JWTClaimsRegistry().validate(decoded.claims)  # exp, nbf, iat
    claims = decoded.claims
    assert decoded.header["alg"] == "HS256"
    assert decoded.header["typ"] == "at+jwt"
    assert claims["iss"] == TEST_ISSUER
    assert claims["aud"] == context.department_id
    assert claims["sub"] == outputs["clientId"]
    assert claims["client_id"] == outputs["clientId"]
    assert claims["scope"] == "tools:gmail tools:google_calendar"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + TTL
    with db.transaction() as session:
        row = session.get(OAuthToken, claims["jti"])
    assert row is not None and row.client_id == outputs["clientId"] and not row.revoked


def test_access_token_key_differs_from_jwt_secret(
    provider: BuiltinOAuthProvider, served: ServedApp
) -> None:
    """A token signed with JWT_SECRET itself (the API-login key) must not verify here."""
    _, outputs, secret = provisioned(provider)
    token = access_token(served, outputs["clientId"], secret)
    with pytest.raises(BadSignatureError):
        jwt.decode(token, OctKey.import_key(TEST_JWT_SECRET), algorithms=HS256)


def test_client_secret_post_is_accepted(provider: BuiltinOAuthProvider, served: ServedApp) -> None:
    _, outputs, secret = provisioned(provider)
    response = requests.post(
        served.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": outputs["clientId"],
            "client_secret": secret,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_wrong_secret_is_401_invalid_client(
    provider: BuiltinOAuthProvider, served: ServedApp
) -> None:
    _, outputs, secret = provisioned(provider)

    response = get_token(served, outputs["clientId"], secret[:-1] + "?")

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "WWW-Authenticate" in response.headers


def test_unknown_client_and_other_grants_are_refused(served: ServedApp) -> None:
    assert get_token(served, "dept-nobody", "whatever").status_code == 401
    response = requests.post(
        served.token_url,
        data={"grant_type": "password", "username": "u", "password": "p"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_scope_beyond_the_grant_is_invalid_scope(
    provider: BuiltinOAuthProvider, served: ServedApp
) -> None:
    _, outputs, secret = provisioned(provider, ["gmail"])

    narrowed = get_token(served, outputs["clientId"], secret, scope="tools:gmail")
    widened = get_token(served, outputs["clientId"], secret, scope="tools:gmail tools:web_search")

    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "tools:gmail"
    assert widened.status_code == 400
    assert widened.json()["error"] == "invalid_scope"


# -- introspection and revocation -------------------------------------------------


def test_introspection_active_then_inactive_after_revoke(
    provider: BuiltinOAuthProvider, served: ServedApp
) -> None:
    context, outputs, secret = provisioned(provider, ["gmail"])
    client_id = outputs["clientId"]
    token = access_token(served, client_id, secret)

    info = introspect(served, client_id, secret, token)
    assert info["active"] is True
    assert info["client_id"] == client_id
    assert info["sub"] == client_id
    assert info["aud"] == context.department_id
    assert info["iss"] == TEST_ISSUER
    assert info["scope"] == "tools:gmail"
    assert info["exp"] - info["iat"] == TTL

    response = revoke(served, client_id, secret, token)
    assert response.status_code == 200, response.text

    assert introspect(served, client_id, secret, token) == {"active": False}
    # RFC 7009: revoking again, or revoking garbage, still answers 200.
    assert revoke(served, client_id, secret, token).status_code == 200
    assert revoke(served, client_id, secret, "not-a-token").status_code == 200


def test_a_client_cannot_see_or_revoke_another_departments_tokens(
    provider: BuiltinOAuthProvider, served: ServedApp
) -> None:
    _, owner, owner_secret = provisioned(provider)
    _, other, other_secret = provisioned(provider)
    token = access_token(served, owner["clientId"], owner_secret)

    assert introspect(served, other["clientId"], other_secret, token) == {"active": False}
    assert revoke(served, other["clientId"], other_secret, token).status_code == 400
    assert introspect(served, owner["clientId"], owner_secret, token)["active"] is True


def test_unknown_forged_and_expired_tokens_are_inactive(
    provider: BuiltinOAuthProvider, served: ServedApp
) -> None:
    _, outputs, secret = provisioned(provider)
    client_id = outputs["clientId"]
    token = access_token(served, client_id, secret)
    claims = jwt.decode(token, derive_signing_key(TEST_JWT_SECRET), algorithms=HS256).claims
    forged = jwt.encode(
        {"alg": "HS256", "typ": "at+jwt"}, dict(claims), derive_signing_key("another secret")
    )

    assert introspect(served, client_id, secret, "garbage") == {"active": False}
    assert introspect(served, client_id, secret, forged) == {"active": False}
    with db.transaction() as session:
        session.execute(
            update(OAuthToken)
            .where(OAuthToken.jti == claims["jti"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert introspect(served, client_id, secret, token) == {"active": False}


def test_purge_removes_only_long_expired_token_rows(
    provider: BuiltinOAuthProvider, served: ServedApp
) -> None:
    _, outputs, secret = provisioned(provider)
    old, current = (access_token(served, outputs["clientId"], secret) for _ in range(2))
    key = derive_signing_key(TEST_JWT_SECRET)
    old_jti, current_jti = (
        jwt.decode(t, key, algorithms=HS256).claims["jti"] for t in (old, current)
    )
    with db.transaction() as session:
        session.execute(
            update(OAuthToken)
            .where(OAuthToken.jti == old_jti)
            .values(expires_at=datetime.now(UTC) - timedelta(days=2))
        )

    assert purge_expired_tokens(datetime.now(UTC) - timedelta(days=1)) >= 1

    with db.transaction() as session:
        assert session.get(OAuthToken, old_jti) is None
        assert session.get(OAuthToken, current_jti) is not None


def test_introspection_requires_client_authentication(
    provider: BuiltinOAuthProvider, served: ServedApp
) -> None:
    _, outputs, secret = provisioned(provider)
    token = access_token(served, outputs["clientId"], secret)
    response = requests.post(
        f"{served.base_url}/oauth/introspect", data={"token": token}, timeout=10
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


# -- delete ------------------------------------------------------------------------


def test_delete_revokes_every_token_and_refuses_the_client(
    provider: BuiltinOAuthProvider, served: ServedApp
) -> None:
    context, outputs, secret = provisioned(provider)
    client_id = outputs["clientId"]
    tokens = [access_token(served, client_id, secret) for _ in range(3)]
    assert all(introspect(served, client_id, secret, t)["active"] for t in tokens)

    # Only the department id: delete must not need anything else.
    bare = department_context(context.department_id, secrets=context.secrets)
    bare.config = {}
    provider.delete(bare)

    assert context.secrets.get(SECRET_NAME) is None
    refused = get_token(served, client_id, secret)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    with db.transaction() as session:
        live = session.scalar(
            select(func.count()).where(
                OAuthToken.client_id == client_id, OAuthToken.revoked.is_(False)
            )
        )
    assert live == 0
    assert client_row(client_id).revoked_at is not None

    # Re-provisioning the department must not bring the old tokens back.
    provider.create(context)
    new_secret = context.secrets.get(SECRET_NAME)
    assert new_secret != secret
    assert get_token(served, client_id, secret).status_code == 401
    for token in tokens:
        assert introspect(served, client_id, new_secret, token) == {"active": False}
    fresh = access_token(served, client_id, new_secret)
    assert introspect(served, client_id, new_secret, fresh)["active"] is True


def test_delete_is_idempotent(provider: BuiltinOAuthProvider) -> None:
    context, _, _ = provisioned(provider)
    provider.delete(context)
    provider.delete(context)
    provider.delete(department_context(new_department_id()))  # never created


# -- check -------------------------------------------------------------------------


def test_check_healthy_then_unhealthy_after_delete(
    provider: BuiltinOAuthProvider, served: ServedApp
) -> None:
    context, outputs, _ = provisioned(provider, ["gmail"])

    healthy = provider.check(context)

    assert healthy.name == "oauth_credentials"
    assert healthy.healthy, healthy.detail
    assert healthy.latency_ms > 0
    assert healthy.data["scopes"] == ["tools:gmail"]
    with db.transaction() as session:
        live = session.scalar(
            select(func.count()).where(
                OAuthToken.client_id == outputs["clientId"], OAuthToken.revoked.is_(False)
            )
        )
    assert live == 0  # the probe token was revoked after use

    provider.delete(context)
    gone = provider.check(context)
    assert not gone.healthy and gone.detail == "no client secret stored"


def test_check_reports_a_rejected_secret(provider: BuiltinOAuthProvider, served: ServedApp) -> None:
    context, _, secret = provisioned(provider)
    provider.delete(department_context(context.department_id))  # secret stays in this store

    result = provider.check(context)

    assert not result.healthy
    assert "401" in result.detail and "invalid_client" in result.detail
    assert secret not in result.detail


def test_check_reports_an_unreachable_server() -> None:
    context = department_context(new_department_id())
    context.secrets.put(SECRET_NAME, "s" * 43)
    unreachable = BuiltinOAuthProvider(token_url="http://127.0.0.1:9/oauth/token")

    result = unreachable.check(context)

    assert isinstance(result, CheckResult) and not result.healthy
    assert "token exchange failed" in result.detail


# -- the secret stays secret ---------------------------------------------------------


def test_secret_never_appears_in_outputs_logs_or_errors(
    provider: BuiltinOAuthProvider, served: ServedApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    context = department_context(new_department_id(), ["gmail"])
    texts: list[str] = []

    texts.append(repr(provider.create(context)))
    secret = context.secrets.get(SECRET_NAME)
    texts.append(repr(provider.create(context)))
    texts.append(repr(provider.check(context)))
    texts.append(get_token(served, f"dept-{context.department_id}", secret + "x").text)
    with pytest.raises(ProviderError) as refused:
        context.config["enabledTools"] = ["nope"]
        provider.create(context)
    texts.append(str(refused.value))
    provider.delete(department_context(context.department_id))
    texts.append(repr(provider.check(context)))  # 401 path, with the secret still in hand
    texts.append(repr(client_row(f"dept-{context.department_id}")))
    provider.delete(context)

    texts.extend(record.getMessage() for record in caplog.records)
    assert caplog.records, "expected the flows above to log something"
    assert secret and all(secret not in text for text in texts)
