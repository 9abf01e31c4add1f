"""Settings, read once from the environment (and an optional .env file).

Every setting is named after its environment variable; the original service's
names (`NODE_ENV`, `N8N_BASE_URL`, `DB_*`) are accepted as aliases. Every
missing or invalid value is reported at start, all at once, naming each
variable (see app/config_types.py for how values are written). The README's
settings table is generated from this model: `python -m app.config_doc --write`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dotenv import load_dotenv
from pydantic import AliasChoices, ValidationError, field_validator, model_validator
from sqlalchemy.engine import URL, make_url

from app.config_fields import (
    PROJECT_ROOT,
    ApiSettings,
    ComponentSettings,
    OperationsSettings,
    ProcessSettings,
    SecuritySettings,
    StateSettings,
    TimingSettings,
    WebhookSettings,
)
from app.config_rules import broken_rules
from app.config_types import ConfigError, describe_errors, format_problems

__all__ = ["ConfigError", "Settings", "current", "install", "load_settings"]

ENVIRONMENTS = ("development", "test", "production")
# gunicorn stops (rather than respawning workers forever) on this exit code.
CONFIG_EXIT_CODE = 3
# Names whose values are never echoed: credentials, and URLs that may carry one.
_SECRET_ENDINGS = (
    "SECRET",
    "SECRETS",
    "TOKEN",
    "TOKENS",
    "PASSWORD",
    "_KEY",
    "_KEYS",
    "DATABASE_URL",
    "REDIS_URL",
)


class Settings(
    ProcessSettings,
    StateSettings,
    TimingSettings,
    ApiSettings,
    SecuritySettings,
    ComponentSettings,
    OperationsSettings,
    WebhookSettings,
):
    """The process's settings. Attributes are typed values: durations in seconds."""

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper(cls, raw: object) -> object:
        return raw.upper() if isinstance(raw, str) else raw

    @field_validator("DATABASE_URL", "TENANT_DATABASE_URL", mode="after")
    @classmethod
    def _psycopg2_driver(cls, url: str) -> str:
        """A bare postgresql:// URL keeps meaning psycopg2 (the installed driver):
        SQLAlchemy 2.1 made psycopg 3 the default for that scheme."""
        if url.startswith("postgresql://"):
            return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
        return url

    @model_validator(mode="before")
    @classmethod
    def _state_url_from_parts(cls, data: Any) -> Any:
        """The original service configures its database as DB_HOST..DB_PASSWORD."""
        if isinstance(data, dict) and not data.get("DATABASE_URL"):
            url = _url_from_parts(data)
            if url:
                return {**data, "DATABASE_URL": url}
        return data

    @model_validator(mode="before")
    @classmethod
    def _container_defaults(cls, data: Any) -> Any:
        """An unset runtime is `docker` where an engine answers (one socket probe)."""
        if not isinstance(data, dict):
            return data
        from app.docker_host import default_docker_host, engine_answers

        host = data.get("DOCKER_HOST") or default_docker_host()
        runtime = data.get("CONTAINER_RUNTIME") or ("docker" if engine_answers(host) else "local")
        return {**data, "DOCKER_HOST": host, "CONTAINER_RUNTIME": runtime}

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
    def caddy_admin_url(self) -> str:
        """CADDY_ADMIN_URL; else the deprecated CADDY_ADMIN_PORT; else the socket
        scripts/caddy.sh opens in RUN_DIR (same derivation as that script)."""
        if self.CADDY_ADMIN_URL:
            return self.CADDY_ADMIN_URL
        if self.CADDY_ADMIN_PORT is not None:
            return f"http://127.0.0.1:{self.CADDY_ADMIN_PORT}"
        return f"unix://{Path(self.RUN_DIR).resolve()}/caddy-home/admin.sock"

    @property
    def oauth_issuer(self) -> str:
        return (self.OAUTH_ISSUER or self.base_url).rstrip("/")


def _url_from_parts(data: dict[str, Any]) -> str:
    try:
        port = int(data.get("DB_PORT", 5432))
    except (TypeError, ValueError):
        return ""  # DB_PORT itself is reported
    return URL.create(
        "postgresql+psycopg2",
        username=data.get("DB_USER", "postgres"),
        password=data.get("DB_PASSWORD") or None,
        host=data.get("DB_HOST", "127.0.0.1"),
        port=port,
        database=data.get("DB_NAME", "provisioning"),
    ).render_as_string(hide_password=False)


def is_secret(name: str) -> bool:
    return name.endswith(_SECRET_ENDINGS)


def environment_names(field_name: str) -> list[str]:
    """The variables a setting is read from, in order of precedence."""
    info = Settings.model_fields.get(field_name)
    alias = info.validation_alias if info else None
    return [str(c) for c in alias.choices] if isinstance(alias, AliasChoices) else [field_name]


def _written_as(field_name: str) -> str:
    """The variable the user actually set for a setting (NODE_ENV for APP_ENV, say)."""
    names = environment_names(field_name)
    return next((name for name in names if name in os.environ), names[0])


def _defaults_for(names: set[str]) -> dict[str, Any]:
    fields = Settings.model_fields
    return {
        name: fields[name].get_default(call_default_factory=True)
        for name in names
        if name in fields
    }


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Reads the environment (after .env) and validates the result: every
    problem is collected, then raised as one ConfigError."""
    # ENV_FILE: an env file elsewhere (the original service's .env, say); the
    # environment still wins over it.
    load_dotenv(os.environ.get("ENV_FILE") or PROJECT_ROOT / ".env", override=False)
    given = dict(overrides or {})
    try:
        return _checked(Settings(**given), set(), [])
    except ValidationError as exc:
        problems = describe_errors(exc.errors(), is_secret, _written_as)
    unparsed = {field for field, _ in problems}
    messages = [message for _, message in problems]
    try:
        # Judge the other settings with defaults in place of the unparsable ones,
        # so one run reports everything wrong.
        fallback = Settings(**{**given, **_defaults_for(unparsed)})
    except ValidationError:
        raise ConfigError(format_problems(messages)) from None
    return _checked(fallback, unparsed, messages)


def _checked(settings: Settings, unparsed: set[str], messages: list[str]) -> Settings:
    problems = messages + broken_rules(settings, unparsed)
    if problems:
        raise ConfigError(format_problems(problems))
    return settings


@contextmanager
def reported_at_start() -> Iterator[None]:
    """For entry points (gunicorn, Celery, flask CLI): bad settings print their
    one message and exit, instead of a traceback."""
    try:
        yield
    except ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        raise SystemExit(CONFIG_EXIT_CODE) from None


_current: Settings | None = None


def install(settings: Settings) -> None:
    """Makes ``settings`` the process-wide settings (done by create_app)."""
    global _current
    _current = settings


def current() -> Settings:
    if _current is None:
        raise RuntimeError("settings not loaded: call create_app() first")
    return _current
