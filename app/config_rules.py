"""Rules that involve more than one setting's type: secrets, combinations,
production-only refusals. Each names the settings it reads, so a setting that
already failed to parse does not produce a second, confusing message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

if TYPE_CHECKING:
    from app.config import Settings

MIN_SECRET_LENGTH = 32
RAILWAY_REQUIRED = (
    "RAILWAY_API_TOKEN",
    "RAILWAY_PROJECT_ID",
    "RAILWAY_ENVIRONMENT_ID",
    "RAILWAY_IMAGE",
)


@dataclass(frozen=True)
class Rule:
    reads: tuple[str, ...]
    holds: Callable[[Settings], bool]
    message: str


def _valid_fernet_keys(setting: str) -> bool:
    """One Fernet key, or several separated by commas (newest first)."""
    keys = [part.strip() for part in setting.split(",") if part.strip()]
    try:
        for key in keys:
            Fernet(key.encode())
    except (ValueError, TypeError):
        return False
    return bool(keys)


def _railway_complete(settings: Settings) -> bool:
    return all(getattr(settings, name) for name in RAILWAY_REQUIRED)


def _webhook_url_ok(url: str) -> bool:
    from app.domain.webhook_security import url_refusal

    # Private hosts are judged at delivery against WEBHOOK_ALLOW_PRIVATE; only
    # what is never acceptable stops the start.
    return url_refusal(url, allow_private=True) is None


def _admin_url_ok(url: str) -> bool:
    if not url:
        return True  # the default socket
    if url.startswith("unix://"):
        path = url[len("unix://") :]
        # 108 bytes is the kernel's limit for a socket path (sun_path).
        return path.startswith("/") and len(path.encode()) < 108
    parsed = urlsplit(url)
    return parsed.scheme in ("http", "https") and bool(parsed.hostname)


def _webhook_secrets_ok(value: str) -> bool:
    """Each secret listed (space-separated, for rotation) is usable: a whsec_ one
    decodes to 24+ bytes, any other is 32+ characters."""
    from app.domain.webhook_signing import SECRET_PREFIX, InvalidSecret, key_bytes

    for secret in value.replace(",", " ").split():
        try:
            key_bytes(secret)
        except InvalidSecret:
            return False
        if not secret.startswith(SECRET_PREFIX) and len(secret) < MIN_SECRET_LENGTH:
            return False
    return True


RULES: tuple[Rule, ...] = (
    Rule(
        ("JWT_SECRET", "APP_ENV"),
        lambda s: len(s.JWT_SECRET) >= MIN_SECRET_LENGTH or s.APP_ENV == "development",
        f"JWT_SECRET: must be set to at least {MIN_SECRET_LENGTH} characters outside development",
    ),
    Rule(
        ("SECRETS_KEY",),
        lambda s: _valid_fernet_keys(s.SECRETS_KEY),
        "SECRETS_KEY: must be a Fernet key, or several separated by commas, newest first "
        "(`make env` writes one to .env)",
    ),
    Rule(
        ("FAULT_INJECTION_ENABLED", "APP_ENV"),
        lambda s: not (s.is_production and s.FAULT_INJECTION_ENABLED),
        "FAULT_INJECTION_ENABLED: a test-only setting, refused in production",
    ),
    Rule(
        ("CONTAINER_RUNTIME", *RAILWAY_REQUIRED),
        lambda s: s.CONTAINER_RUNTIME != "railway" or _railway_complete(s),
        "CONTAINER_RUNTIME=railway needs " + ", ".join(RAILWAY_REQUIRED),
    ),
    Rule(
        ("RAILWAY_DEPLOY_TIMEOUT", "STEP_TIMEOUT", "CONTAINER_RUNTIME"),
        lambda s: s.CONTAINER_RUNTIME != "railway" or s.RAILWAY_DEPLOY_TIMEOUT < s.STEP_TIMEOUT,
        "RAILWAY_DEPLOY_TIMEOUT: must be shorter than STEP_TIMEOUT (a wait must fit in its step)",
    ),
    Rule(
        ("CADDY_ADMIN_URL",),
        lambda s: _admin_url_ok(s.CADDY_ADMIN_URL),
        "CADDY_ADMIN_URL: must be unix:///absolute/path.sock or an http(s) URL with a host",
    ),
    Rule(("REGIONS",), lambda s: bool(s.REGIONS), "REGIONS: must list at least one region"),
    Rule(
        ("WEBHOOK_URLS",),
        lambda s: all(_webhook_url_ok(url) for url in s.WEBHOOK_URLS),
        "WEBHOOK_URLS: must be http(s) URLs with a host, none link-local or a metadata address",
    ),
    Rule(
        ("WEBHOOK_SECRET",),
        lambda s: _webhook_secrets_ok(s.WEBHOOK_SECRET),
        "WEBHOOK_SECRET: each secret (space-separated) must be whsec_<base64 of 24+ bytes> "
        f"or at least {MIN_SECRET_LENGTH} characters",
    ),
    Rule(
        # Receivers must be able to verify signatures, so production names the key.
        ("WEBHOOK_URLS", "WEBHOOK_SECRET", "APP_ENV"),
        lambda s: not (s.is_production and s.WEBHOOK_URLS and not s.WEBHOOK_SECRET),
        "WEBHOOK_URLS: needs WEBHOOK_SECRET in production",
    ),
)


def broken_rules(settings: Settings, unparsed: set[str]) -> list[str]:
    """Messages of the rules that fail, leaving out those reading an unparsed setting."""
    return [
        rule.message
        for rule in RULES
        if not unparsed.intersection(rule.reads) and not rule.holds(settings)
    ]
