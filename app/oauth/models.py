"""OAuth tables: one confidential client per department and every token issued to it.

Client secrets are never stored here, only a salted hash; the secret itself
lives Fernet-encrypted in ``department_secrets`` (see app.persistence.secrets).
Clients are revoked rather than deleted so that the tokens issued to them keep a
row that says "revoked" instead of vanishing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

from authlib.oauth2.rfc6749 import ClientMixin, list_to_scope, scope_to_list
from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.persistence.models import Base, utcnow

CLIENT_CREDENTIALS = "client_credentials"
CONFIDENTIAL_AUTH_METHODS = frozenset({"client_secret_basic", "client_secret_post"})

# Client secrets are 32 random bytes (oauth_builtin.SECRET_BYTES), never chosen by a
# person: guessing one from a leaked hash is hopeless at any hash speed, so a slow KDF
# guards nothing here. It cost 35 to 50 ms of CPU (scrypt at n=2**14, measured here)
# per token request and per client created or checked (issue 16: CPU per department).
# New hashes are a salted HMAC-SHA256; scrypt hashes written
# before verify as they did, with the parameters stored in them.
HASH_SCHEME = "hmac-sha256"
SCRYPT_SCHEME = "scrypt"  # earlier hashes: scrypt$n$r$p$salt$hash
SALT_BYTES = 16
HASH_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hmac(secret: str, salt: bytes) -> bytes:
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=r, p=p, dklen=HASH_BYTES, maxmem=64 * 1024 * 1024
    )


def hash_secret(secret: str) -> str:
    """``hmac-sha256$salt$hash``: self-describing, so verification needs nothing else."""
    salt = secrets.token_bytes(SALT_BYTES)
    return "$".join((HASH_SCHEME, _b64(salt), _b64(_hmac(secret, salt))))


def verify_secret(secret: str, encoded: str) -> bool:
    try:
        scheme, *fields = encoded.split("$")
        if scheme == HASH_SCHEME:
            salt, digest = fields
            candidate = _hmac(secret, _unb64(salt))
        elif scheme == SCRYPT_SCHEME:
            n, r, p, salt, digest = fields
            candidate = _scrypt(secret, _unb64(salt), int(n), int(r), int(p))
        else:
            return False
        return hmac.compare_digest(candidate, _unb64(digest))
    except ValueError:  # malformed hash or parameters: never a match
        return False


class OAuthClient(Base, ClientMixin):
    """A department's confidential client; Authlib reads it through ClientMixin."""

    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    department_id: Mapped[str] = mapped_column(String(31), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(255))
    # During a credential rotation the new secret is valid too, until the agent
    # runs on it; then it becomes secret_hash and the old one stops working.
    next_secret_hash: Mapped[str | None] = mapped_column(String(255))
    scopes: Mapped[list[str]] = mapped_column(JSONB, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSONB, default=lambda: [CLIENT_CREDENTIALS])
    audience: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    revoked_at: Mapped[datetime | None]

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    # -- authlib ClientMixin --------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # client credentials only: there is no redirect

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(self.scopes)
        return list_to_scope([s for s in scope_to_list(scope) or [] if s in allowed]) or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.is_active:
            return False
        if verify_secret(client_secret, self.secret_hash):
            return True
        return bool(self.next_secret_hash) and verify_secret(
            client_secret, self.next_secret_hash or ""
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in CONFIDENTIAL_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


class OAuthToken(Base):
    """One issued access token, keyed by its JWT ``jti``; the token itself is not stored."""

    __tablename__ = "oauth_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.client_id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(Text, default="")
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None]
