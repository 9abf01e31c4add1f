"""How receivers know a webhook came from us: Standard Webhooks signatures
(https://www.standardwebhooks.com), so they verify with an existing library.

    webhook-id: <event id>          (the same on every retry: deduplicate on it)
    webhook-timestamp: <unix seconds at sending>
    webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>"> [v1,<...> ...]

``WEBHOOK_SECRET`` holds one or more secrets separated by spaces: each signs,
so during a rotation receivers holding either the new or the old secret verify
(list the new one, let receivers switch, then drop the old one). A ``whsec_``
secret is base64 of the key, as the Standard Webhooks libraries expect; any
other value is used as the key's bytes as it stands.

Deprecated, kept for one release: ``X-Webhook-Signature: t=<unix>,v1=<hex
HMAC-SHA256 of "<t>.<body>">`` keyed with the first secret's text.

Standard library only: app.config imports webhook_security, a sibling of this.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's marker, not a secret
LEGACY_HEADER = "X-Webhook-Signature"
DEFAULT_TOLERANCE = 300  # seconds a receiver should accept a signature for


class InvalidSecret(ValueError):
    pass


def new_secret() -> str:
    """A fresh ``whsec_`` secret (32 random bytes), as `make env` writes one."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_texts(webhook_secret: str, secrets_key: str) -> list[str]:
    """The configured secrets, or one derived from SECRETS_KEY: stable per install,
    and distinct from it so a leaked webhook key reveals nothing stored."""
    listed = webhook_secret.replace(",", " ").split()
    if listed:
        return listed
    derived = hmac.new(secrets_key.encode(), b"webhook-signing-v1", hashlib.sha256)
    return [derived.hexdigest()]


def key_bytes(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecret(f"{SECRET_PREFIX} secret is not valid base64") from exc
    if len(key) < 24:
        raise InvalidSecret(f"{SECRET_PREFIX} secret must hold at least 24 bytes")
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(
    msg_id: str, body: bytes, secret_list: list[str], timestamp: int | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers, plus the deprecated one; signed at send time,
    so a retry carries a fresh timestamp."""
    stamp = int(time.time()) if timestamp is None else timestamp
    signatures = " ".join(signature(key_bytes(s), msg_id, stamp, body) for s in secret_list)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signatures,
        LEGACY_HEADER: legacy_signature(secret_list[0].encode(), body, stamp),
    }


def legacy_signature(key: bytes, body: bytes, timestamp: int) -> str:
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_legacy(
    key: bytes,
    header: str,
    body: bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """What a receiver of the deprecated header does: it matches and is recent."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        stamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance:
        return False
    expected = legacy_signature(key, body, stamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))
