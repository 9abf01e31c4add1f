"""The Authlib authorization server: client credentials in, signed JWT access tokens out.

Tokens are RFC 9068 JWTs signed with HS256 under a key HMAC-derived from JWT_SECRET
with a label of its own, so a token of the API's login (flask-jwt-extended, which
signs with JWT_SECRET itself) can never pass as an access token, nor the reverse.
Because the key is symmetric, resource servers cannot verify tokens themselves:
they ask ``/oauth/introspect``, which also makes revocation effective at once.

Every issued token's ``jti`` is recorded in ``oauth_tokens``; introspection trusts
a token only if its signature verifies AND its row says it is live AND its client
is still active.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidScopeError,
    TokenMixin,
    list_to_scope,
    scope_to_list,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from sqlalchemy import delete, select, update
from sqlalchemy.engine import CursorResult

from app.config import ConfigError
from app.oauth.models import CONFIDENTIAL_AUTH_METHODS, OAuthClient, OAuthToken
from app.persistence.database import db

ALGORITHM = "HS256"
KEY_ID = "oauth-at-hs256-v1"
# Changing the label (or JWT_SECRET) invalidates every outstanding access token.
KEY_LABEL = b"provisioning-orchestrator/oauth/access-token-signing/v1"
AUTH_METHODS = sorted(CONFIDENTIAL_AUTH_METHODS)

# Only HS256 is ever accepted, whatever a presented token's header claims.
ACCEPTED_ALGORITHMS = [ALGORITHM]


def derive_signing_key(jwt_secret: str) -> OctKey:
    if not jwt_secret:
        raise ConfigError("JWT_SECRET must be set: OAuth access tokens are signed with it")
    raw = hmac.new(jwt_secret.encode(), KEY_LABEL, hashlib.sha256).digest()
    return OctKey.import_key(raw, {"kid": KEY_ID})


def _timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


def _datetime(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


@dataclass(frozen=True)
class TokenState(TokenMixin):
    """A token row joined with its client's state, detached from any session."""

    jti: str
    client_id: str
    scope: str
    audience: str
    issued_at: int
    expires_at: int
    revoked: bool
    client_active: bool

    def check_client(self, client: ClientMixin) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_at - self.issued_at

    def is_expired(self) -> bool:
        return self.expires_at <= time.time()

    def is_revoked(self) -> bool:
        # A revoked or deleted client takes all its tokens down with it, even
        # ones whose own row was somehow missed.
        return self.revoked or not self.client_active


class TokenStore:
    """Signs-and-records on issue, verifies-and-looks-up on introspection and revocation."""

    def __init__(self, issuer: str, key: OctKey) -> None:
        self.issuer = issuer
        self.key = key

    def claims(self, token_string: str) -> dict[str, Any] | None:
        """The verified claims of one of our tokens, or None for anything else."""
        try:
            claims = jwt.decode(token_string, self.key, algorithms=ACCEPTED_ALGORITHMS).claims
        except (JoseError, ValueError):
            return None
        if claims.get("iss") != self.issuer or not isinstance(claims.get("jti"), str):
            return None
        return dict(claims)

    def save(self, token: dict[str, Any], request: Any) -> None:
        claims = self.claims(token["access_token"])
        if claims is None:  # we just signed it; failing here means a misconfiguration
            raise RuntimeError("freshly issued access token does not verify")
        with db.transaction() as session:
            # Lock the client row so a concurrent revocation either sees this token
            # (and revokes it) or makes us refuse to issue it.
            active = session.scalar(
                select(OAuthClient.revoked_at.is_(None))
                .where(OAuthClient.client_id == request.client.get_client_id())
                .with_for_update(read=True)
            )
            if not active:
                raise InvalidClientError(status_code=401, description="The client is revoked.")
            session.add(
                OAuthToken(
                    jti=claims["jti"],
                    client_id=request.client.get_client_id(),
                    scope=claims.get("scope") or "",
                    issued_at=_datetime(claims["iat"]),
                    expires_at=_datetime(claims["exp"]),
                )
            )

    def find(self, token_string: str) -> TokenState | None:
        claims = self.claims(token_string)
        if claims is None:
            return None
        with db.transaction() as session:
            row = session.execute(
                select(OAuthToken, OAuthClient)
                .join(OAuthClient, OAuthClient.client_id == OAuthToken.client_id)
                .where(OAuthToken.jti == claims["jti"])
            ).one_or_none()
        if row is None:
            return None
        token, client = row
        return TokenState(
            jti=token.jti,
            client_id=token.client_id,
            scope=token.scope,
            audience=client.audience,
            issued_at=_timestamp(token.issued_at),
            expires_at=_timestamp(token.expires_at),
            revoked=token.revoked,
            client_active=client.is_active,
        )

    def revoke(self, jti: str) -> None:
        with db.transaction() as session:
            session.execute(
                update(OAuthToken)
                .where(OAuthToken.jti == jti, OAuthToken.revoked.is_(False))
                .values(revoked=True, revoked_at=datetime.now(UTC))
            )


def query_client(client_id: str) -> OAuthClient | None:
    """Active clients only: a revoked client fails authentication with invalid_client."""
    with db.transaction() as session:
        return session.scalar(
            select(OAuthClient).where(
                OAuthClient.client_id == client_id, OAuthClient.revoked_at.is_(None)
            )
        )


def revoke_client(client_id: str) -> None:
    """Revokes the client and every token issued to it, in one transaction; idempotent."""
    now = datetime.now(UTC)
    with db.transaction() as session:
        client = session.scalar(
            select(OAuthClient).where(OAuthClient.client_id == client_id).with_for_update()
        )
        if client is None:
            return
        if client.revoked_at is None:
            client.revoked_at = now
        session.execute(
            update(OAuthToken)
            .where(OAuthToken.client_id == client_id, OAuthToken.revoked.is_(False))
            .values(revoked=True, revoked_at=now)
        )


def purge_expired_tokens(older_than: datetime) -> int:
    """Deletes token rows that expired before ``older_than``; for a periodic task."""
    with db.transaction() as session:
        # A DML statement's result is a cursor result, which has the row count.
        result = cast(
            CursorResult[Any],
            session.execute(delete(OAuthToken).where(OAuthToken.expires_at < older_than)),
        )
    return int(result.rowcount or 0)


class DepartmentTokenGenerator(JWTBearerTokenGenerator):
    """RFC 9068 access tokens whose audience is the client's department."""

    def __init__(self, issuer: str, key: OctKey, ttl: int) -> None:
        super().__init__(issuer=issuer, alg=ALGORITHM, expires_generator=ttl)
        self._key = key

    def get_jwks(self) -> OctKey:
        return self._key

    def get_audiences(self, client: OAuthClient, user: Any, scope: str) -> str:
        return client.audience

    @staticmethod
    def get_allowed_scope(client: OAuthClient, scope: str | None) -> str:
        # No scope asked for means everything the client was granted.
        if not scope:
            return list_to_scope(client.scopes) or ""
        return client.get_allowed_scope(scope)


class DepartmentClientCredentialsGrant(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_requested_scope(self) -> None:
        # Asking for a scope the client was not granted is an error rather than
        # being silently narrowed, so misconfigured callers notice.
        requested = set(scope_to_list(self.request.payload.scope) or [])
        if not requested <= set(self.client.scopes):
            raise InvalidScopeError()
