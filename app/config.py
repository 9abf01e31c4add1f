"""Settings, read once from the environment (and an optional .env file).

Every setting is named after its environment variable. A missing or invalid
value fails at start with a message that names it, rather than at first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from dotenv import load_dotenv
from sqlalchemy.engine import make_url

ENVIRONMENTS = ("development", "test", "production")
MIN_SECRET_LENGTH = 32
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message names it."""


def _default_database_url() -> str:
    """Builds the state database URL from the seed's DB_* variables when given."""
    user = os.environ.get("DB_USER", "postgres")
    password = os.environ.get("DB_PASSWORD", "")
    auth = f"{user}:{password}" if password else user
    host = os.environ.get("DB_HOST", "127.0.0.1")
    port = os.environ.get("DB_PORT", "5432")
    name = os.environ.get("DB_NAME", "provisioning")
    return f"postgresql+psycopg2://{auth}@{host}:{port}/{name}"


@dataclass(frozen=True)
class Settings:
    APP_ENV: str = "development"
    PORT: int = 3000
    PUBLIC_BASE_URL: str = ""
    DATABASE_URL: str = field(default_factory=_default_database_url)
    TENANT_DATABASE_URL: str = ""
    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    JWT_SECRET: str = ""
    SECRETS_KEY: str = ""
    RUN_DIR: str = str(PROJECT_ROOT / ".run")

    MAX_PROVISIONING_TIME: float = 300.0
    STEP_TIMEOUT: float = 60.0
    STALL_TIMEOUT: float = 90.0
    HEARTBEAT_INTERVAL: float = 5.0
    SWEEP_INTERVAL: float = 15.0
    RETRY_MAX: int = 3
    RETRY_BASE: float = 1.0
    RETRY_FACTOR: float = 2.0
    RETRY_JITTER: float = 0.5
    VALIDATION_RETRY_MAX: int = 6

    PROVISION_RATE_LIMIT: str = "10 per hour"
    API_RATE_LIMIT: str = "100 per minute"
    REGIONS: tuple[str, ...] = ("us-east", "us-west", "eu-west", "eu-central", "ap-southeast")
    # Browser origins allowed to call the API cross-origin; empty keeps CORS closed.
    CORS_ORIGINS: tuple[str, ...] = ()

    # Empty: "docker" when an engine answers at DOCKER_HOST, else "local" (load_settings).
    CONTAINER_RUNTIME: str = ""
    DOCKER_HOST: str = ""
    AGENT_IMAGE: str = ""  # empty: the tag app/providers/agent_image.py builds from the sources
    GATEWAY_DRIVER: str = "caddy"
    WORKFLOWS_DRIVER: str = "n8n"
    OAUTH_DRIVER: str = "builtin"
    CADDY_ADMIN_URL: str = "http://127.0.0.1:2019"
    GATEWAY_PUBLIC_URL: str = "http://127.0.0.1:8080"
    N8N_URL: str = "http://127.0.0.1:5678"
    N8N_API_KEY: str = ""
    OAUTH_ISSUER: str = ""
    OAUTH_TOKEN_TTL: int = 3600
    RAILWAY_API_URL: str = "https://backboard.railway.com/graphql/v2"
    RAILWAY_API_TOKEN: str = ""
    RAILWAY_PROJECT_ID: str = ""
    RAILWAY_ENVIRONMENT_ID: str = ""
    RAILWAY_IMAGE: str = ""

    DEPROVISION_REQUIRE_CONFIRM: bool = False
    DRIFT_CHECK_INTERVAL: float = 300.0  # seconds between fleet health sweeps; 0 turns them off
    AUTO_REPAIR: bool = False

    # Observability: LOG_FORMAT json|text (empty: text in development, json elsewhere);
    # METRICS_TOKEN guards /metrics (empty: loopback clients only).
    LOG_FORMAT: str = ""
    LOG_LEVEL: str = "INFO"
    METRICS_TOKEN: str = ""

    # Webhooks: every job state change is POSTed, signed, to these URLs and to
    # the department's callbackUrl. An unset WEBHOOK_SECRET derives a
    # per-install key from SECRETS_KEY (app/domain/webhook_security.py).
    WEBHOOK_URLS: tuple[str, ...] = ()
    WEBHOOK_SECRET: str = ""
    WEBHOOK_ALLOW_PRIVATE: bool = False
    WEBHOOK_TIMEOUT: float = 10.0
    WEBHOOK_MAX_ATTEMPTS: int = 8
    WEBHOOK_RETRY_BASE: float = 5.0

    FAULT_INJECTION_ENABLED: bool = False

    @property
    def is_production(self) -> bool:
        return self.APP_ENV == "production"

    @property
    def base_url(self) -> str:
        return (self.PUBLIC_BASE_URL or f"http://127.0.0.1:{self.PORT}").rstrip("/")

    @property
    def tenant_database_url(self) -> str:
        """Tenants get a database of their own on the state database's server by
        default, so a tenant role never even connects to the orchestrator's tables."""
        if self.TENANT_DATABASE_URL:
            return self.TENANT_DATABASE_URL
        url = make_url(self.DATABASE_URL)
        return url.set(database=f"{url.database}_tenants").render_as_string(hide_password=False)

    @property
    def n8n_api_key(self) -> str:
        """N8N_API_KEY, or the key `scripts/n8n.sh setup` wrote into RUN_DIR."""
        if self.N8N_API_KEY:
            return self.N8N_API_KEY
        key_file = Path(self.RUN_DIR) / "n8n-api-key"
        return key_file.read_text().strip() if key_file.exists() else ""

    @property
    def oauth_issuer(self) -> str:
        return (self.OAUTH_ISSUER or self.base_url).rstrip("/")


def _coerce(name: str, raw: str, target: Any) -> Any:
    try:
        if target is bool:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if target is int:
            return int(raw)
        if target is float:
            return float(raw)
        if target == tuple[str, ...]:
            return tuple(item.strip() for item in raw.split(",") if item.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a valid {target.__name__}") from exc
    return raw


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Reads the environment (after .env) and validates the result."""
    load_dotenv(PROJECT_ROOT / ".env", override=False)
    if "NODE_ENV" in os.environ and "APP_ENV" not in os.environ:
        os.environ["APP_ENV"] = os.environ["NODE_ENV"]  # the seed's name for it
    hints = {f.name: f.type for f in fields(Settings)}
    types = {
        "int": int,
        "float": float,
        "bool": bool,
        "str": str,
        "tuple[str, ...]": tuple[str, ...],
    }
    values: dict[str, Any] = {
        name: _coerce(name, os.environ[name], types[str(hint)])
        for name, hint in hints.items()
        if name in os.environ
    }
    values.update(overrides or {})
    values.update(_container_defaults(values))
    settings = Settings(**values)
    validate(settings)
    return settings


def _container_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """Fills DOCKER_HOST and CONTAINER_RUNTIME when unset (one socket probe)."""
    from app.docker_host import default_docker_host, engine_answers

    host = values.get("DOCKER_HOST") or default_docker_host()
    runtime = values.get("CONTAINER_RUNTIME") or ("docker" if engine_answers(host) else "local")
    return {"DOCKER_HOST": host, "CONTAINER_RUNTIME": runtime}


def _valid_fernet_key(key: str) -> bool:
    try:
        Fernet(key.encode())
    except (ValueError, TypeError):
        return False
    return True


def _railway_complete(settings: Settings) -> bool:
    required = (
        "RAILWAY_API_TOKEN",
        "RAILWAY_PROJECT_ID",
        "RAILWAY_ENVIRONMENT_ID",
        "RAILWAY_IMAGE",
    )
    return all(getattr(settings, name) for name in required)


def _webhook_url_ok(url: str) -> bool:
    from app.domain.webhook_security import url_refusal

    # Private hosts are judged at delivery against WEBHOOK_ALLOW_PRIVATE; only
    # what is never acceptable stops the start.
    return url_refusal(url, allow_private=True) is None


# Each rule: (it holds, the message naming the setting when it does not).
RULES: tuple[tuple[Callable[[Settings], bool], str], ...] = (
    (lambda s: s.APP_ENV in ENVIRONMENTS, f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}"),
    (
        lambda s: len(s.JWT_SECRET) >= MIN_SECRET_LENGTH or s.APP_ENV == "development",
        f"JWT_SECRET must be set to at least {MIN_SECRET_LENGTH} characters",
    ),
    (
        lambda s: _valid_fernet_key(s.SECRETS_KEY),
        "SECRETS_KEY must be a Fernet key (`make env` writes one to .env)",
    ),
    (
        lambda s: not (s.is_production and s.FAULT_INJECTION_ENABLED),
        "FAULT_INJECTION_ENABLED is a test-only setting; refusing it in production",
    ),
    (
        lambda s: s.CONTAINER_RUNTIME in ("docker", "local", "railway"),
        "CONTAINER_RUNTIME must be 'docker', 'local' or 'railway'",
    ),
    (
        lambda s: s.CONTAINER_RUNTIME != "railway" or _railway_complete(s),
        "CONTAINER_RUNTIME=railway needs RAILWAY_API_TOKEN, RAILWAY_PROJECT_ID, "
        "RAILWAY_ENVIRONMENT_ID and RAILWAY_IMAGE",
    ),
    (lambda s: s.STEP_TIMEOUT > 0, "STEP_TIMEOUT must be positive"),
    (lambda s: s.MAX_PROVISIONING_TIME > 0, "MAX_PROVISIONING_TIME must be positive"),
    (lambda s: s.STALL_TIMEOUT > 0, "STALL_TIMEOUT must be positive"),
    (lambda s: s.RETRY_BASE > 0, "RETRY_BASE must be positive"),
    (lambda s: s.RETRY_MAX >= 0, "RETRY_MAX must not be negative"),
    (lambda s: bool(s.REGIONS), "REGIONS must list at least one region"),
    (
        lambda s: all(_webhook_url_ok(url) for url in s.WEBHOOK_URLS),
        "WEBHOOK_URLS must be http(s) URLs with a host, none link-local or a metadata address",
    ),
    (
        lambda s: not s.WEBHOOK_SECRET or len(s.WEBHOOK_SECRET) >= MIN_SECRET_LENGTH,
        f"WEBHOOK_SECRET must be at least {MIN_SECRET_LENGTH} characters",
    ),
    (
        # Receivers must be able to verify signatures, so production names the key.
        lambda s: not (s.is_production and s.WEBHOOK_URLS and not s.WEBHOOK_SECRET),
        "WEBHOOK_URLS needs WEBHOOK_SECRET in production",
    ),
    (lambda s: s.WEBHOOK_TIMEOUT > 0, "WEBHOOK_TIMEOUT must be positive"),
    (lambda s: s.WEBHOOK_MAX_ATTEMPTS >= 1, "WEBHOOK_MAX_ATTEMPTS must be at least 1"),
    (lambda s: s.WEBHOOK_RETRY_BASE > 0, "WEBHOOK_RETRY_BASE must be positive"),
    (lambda s: s.LOG_FORMAT in ("", "json", "text"), "LOG_FORMAT must be json or text"),
    (
        lambda s: s.LOG_LEVEL.upper() in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        "LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL",
    ),
)


def validate(settings: Settings) -> None:
    for holds, message in RULES:
        if not holds(settings):
            raise ConfigError(message)


_current: Settings | None = None


def install(settings: Settings) -> None:
    """Makes ``settings`` the process-wide settings (done by create_app)."""
    global _current
    _current = settings


def current() -> Settings:
    if _current is None:
        raise RuntimeError("settings not loaded: call create_app() first")
    return _current
