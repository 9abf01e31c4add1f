"""WSGI factory for the reference department agent.

Configuration comes only from the environment:

``AGENT_DEPARTMENT_ID``, ``AGENT_DEPARTMENT_NAME``, ``AGENT_CONFIG_JSON``,
``AGENT_DATABASE_URL`` (tenant role with its own password),
``AGENT_DATABASE_SCHEMA`` (optional; defaults to ``<id with - as _>_tenant``),
``AGENT_OAUTH_TOKEN_URL``, ``AGENT_OAUTH_CLIENT_ID``, ``AGENT_OAUTH_CLIENT_SECRET``.

Served by ``python -m department_agent.serve`` (waitress). It is a plain WSGI
function rather than a Flask app: two GET routes need no framework, and importing
Flask was a quarter of the CPU each department's agent spends booting (issue 16).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from department_agent.checks import Redactor, check_database, check_oauth
from department_agent.credentials import Credentials, CredentialSource

REQUIRED_VARIABLES = (
    "AGENT_DEPARTMENT_ID",
    "AGENT_DATABASE_URL",
    "AGENT_OAUTH_TOKEN_URL",
    "AGENT_OAUTH_CLIENT_ID",
    "AGENT_OAUTH_CLIENT_SECRET",
)


class AgentConfigError(RuntimeError):
    """The environment does not describe a runnable agent; fail at start, not later."""


@dataclass(frozen=True)
class AgentSettings:
    department_id: str
    department_name: str
    config: dict[str, Any]
    database_schema: str
    oauth_token_url: str
    oauth_client_id: str
    # repr=False keeps credentials out of tracebacks and debug logs.
    database_url: str = field(repr=False)
    oauth_client_secret: str = field(repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> AgentSettings:
        missing = [name for name in REQUIRED_VARIABLES if not environ.get(name)]
        if missing:
            raise AgentConfigError(f"missing environment variables: {', '.join(missing)}")
        department_id = environ["AGENT_DEPARTMENT_ID"]
        return cls(
            department_id=department_id,
            department_name=environ.get("AGENT_DEPARTMENT_NAME") or department_id,
            config=_parse_config(environ.get("AGENT_CONFIG_JSON") or "{}"),
            database_schema=environ.get("AGENT_DATABASE_SCHEMA")
            or f"{department_id.replace('-', '_')}_tenant",
            oauth_token_url=environ["AGENT_OAUTH_TOKEN_URL"],
            oauth_client_id=environ["AGENT_OAUTH_CLIENT_ID"],
            database_url=environ["AGENT_DATABASE_URL"],
            oauth_client_secret=environ["AGENT_OAUTH_CLIENT_SECRET"],
        )

    def redactor(self) -> Redactor:
        return Redactor([self.oauth_client_secret, self.database_url, _url_password(self)])


def _url_password(settings: AgentSettings) -> str:
    password = urlsplit(settings.database_url).password
    return unquote(password) if password else ""


def _parse_config(raw: str) -> dict[str, Any]:
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise AgentConfigError(f"AGENT_CONFIG_JSON is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise AgentConfigError("AGENT_CONFIG_JSON must be a JSON object")
    return config


def enabled_names(items: Any) -> list[str]:
    """Names of enabled entries, whichever shape the department config uses.

    Accepted: ``["a", "b"]``, ``[{"name": "a", "enabled": false}]`` and
    ``{"a": true, "b": {"enabled": false}}``. Entries are on unless disabled.
    """
    if isinstance(items, Mapping):
        return [str(name) for name, value in items.items() if _is_enabled(value)]
    if isinstance(items, list):
        return [name for item in items if (name := _entry_name(item)) and _is_enabled(item)]
    return []


def _entry_name(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        return str(item.get("name") or item.get("id") or item.get("key") or "")
    return ""


def _is_enabled(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        return value.get("enabled", True) is not False
    return value is not None


# The original service's tool names act as their closest current tool. The agent
# ships on its own, so it carries this table; a unit test holds it equal to
# app/domain/catalogue.py's ORIGINAL_TOOLS.
TOOL_BEHAVIOURS = {"email": "gmail", "database": "database_query"}


def describe(settings: AgentSettings) -> dict[str, Any]:
    """What the department runs; config values themselves are not echoed."""
    tools = enabled_names(settings.config.get("enabledTools"))
    return {
        "departmentId": settings.department_id,
        "departmentName": settings.department_name,
        "workflows": enabled_names(settings.config.get("workflows")),
        "tools": tools,
        # What each tool does here: `email` is handled exactly as `gmail`.
        "toolBehaviours": {tool: TOOL_BEHAVIOURS.get(tool, tool) for tool in tools},
    }


def initial_credentials(settings: AgentSettings) -> Credentials:
    password = _url_password(settings)
    return Credentials((password,) if password else (), settings.oauth_client_secret)


def run_health_checks(
    settings: AgentSettings, source: CredentialSource | None = None
) -> tuple[dict[str, Any], int]:
    credentials = (source or CredentialSource(initial_credentials(settings), None)).current()
    redact = Redactor(
        [
            settings.oauth_client_secret,
            settings.database_url,
            _url_password(settings),
            *credentials.database_passwords,
            credentials.oauth_client_secret,
        ]
    )
    checks = {
        "database": check_database(
            settings.database_url,
            settings.database_schema,
            redact,
            credentials.database_passwords,
        ),
        "oauth": check_oauth(
            settings.oauth_token_url,
            settings.oauth_client_id,
            credentials.oauth_client_secret,
            redact,
        ),
    }
    healthy = all(outcome.ok for outcome in checks.values())
    body = {
        "status": "ok" if healthy else "unhealthy",
        "departmentId": settings.department_id,
        "checks": {name: outcome.as_dict() for name, outcome in checks.items()},
        # Fingerprints only: lets the orchestrator see a hand-over took effect.
        "credentials": credentials.describe(),
    }
    return body, 200 if healthy else 503


def with_settings_file(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` overlaid with the JSON object in ``AGENT_SETTINGS_FILE``, if set.

    In a container the credentials arrive as a 0400 file mounted read-only,
    because a container's environment is shown by ``docker inspect``.
    """
    merged = dict(environ)
    path = environ.get("AGENT_SETTINGS_FILE")
    if not path:
        return merged
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
    except (OSError, ValueError) as exc:
        raise AgentConfigError(f"cannot read AGENT_SETTINGS_FILE {path}: {exc}") from exc
    if not isinstance(values, dict):
        raise AgentConfigError("AGENT_SETTINGS_FILE must hold a JSON object")
    merged.update({str(k): str(v) for k, v in values.items() if str(k).startswith("AGENT_")})
    return merged


def create_app(environ: Mapping[str, str] | None = None) -> WSGIApplication:
    given = with_settings_file(os.environ if environ is None else environ)
    settings = AgentSettings.from_environ(given)
    source = CredentialSource(initial_credentials(settings), given.get("AGENT_CREDENTIALS_FILE"))
    routes = {
        "/": lambda: (describe(settings), 200),
        "/health": lambda: run_health_checks(settings, source),
    }

    def app(request: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        route = routes.get(request.get("PATH_INFO") or "/")
        method = request.get("REQUEST_METHOD", "GET")
        if route is None:
            return respond(start_response, 404, {"error": "not found"})
        if method not in ("GET", "HEAD"):
            refusal = {"error": "method not allowed"}
            return respond(start_response, 405, refusal, [("Allow", "GET, HEAD")])
        body, status = route()
        sent = respond(start_response, status, body)
        return [] if method == "HEAD" else sent

    return app


def respond(
    start_response: StartResponse,
    status: int,
    body: Any,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    """JSON as Flask's jsonify wrote it (compact, ASCII, keys in their order, a newline)."""
    data = (json.dumps(body, separators=(",", ":")) + "\n").encode()
    fixed = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    start_response(f"{status} {HTTPStatus(status).phrase}", [*fixed, *(headers or [])])
    return [data]
