"""The two things an agent must be able to do to be of any use.

(a) reach its tenant schema with its own role and password, and (b) obtain an
access token with its own OAuth client. The database is checked for real on
every call; a token, once obtained, is kept until shortly before it expires
(as any OAuth client should), so that calls to /health, which anyone can make
through the gateway, do not each cost the authorization server a secret check
and a token record. Results carry no secret, and every message is redacted
anyway because drivers and servers sometimes echo what they were given.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import psycopg2
from psycopg2 import sql

from department_agent.credentials import fingerprint

CONNECT_TIMEOUT_SECONDS = 3
STATEMENT_TIMEOUT_MS = 3000
TOKEN_TIMEOUT = 5.0
MAX_DETAIL_CHARS = 300
# A cached token is given up this long before it expires, so it is never
# reported valid at the very moment it stops being so.
TOKEN_EXPIRY_MARGIN = 30.0


class Redactor:
    """Replaces known secret values in text that is about to leave the process."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:MAX_DETAIL_CHARS]


@dataclass(frozen=True)
class CheckOutcome:
    ok: bool
    latency_ms: float
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "latencyMs": self.latency_ms, "detail": self.detail, **self.data}


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def check_database(
    database_url: str, schema: str, redact: Redactor, passwords: Sequence[str] = ()
) -> CheckOutcome:
    """Connect as the tenant role and prove the tenant schema is usable by it.

    With ``passwords``, each is tried in order (the URL's own is not used): a
    rotation hands over the new password before the role switches to it.
    """
    start = time.perf_counter()
    connection, used, error = None, "", None
    for password in passwords or (None,):
        extra = {} if password is None else {"password": password}
        try:
            connection = psycopg2.connect(
                database_url,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                application_name="department-agent",
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                **extra,
            )
        except psycopg2.Error as exc:
            error = exc
            continue
        used = password or ""
        break
    if connection is None:
        return CheckOutcome(False, _elapsed_ms(start), redact(f"connect failed: {error}".strip()))
    try:
        detail, data = _probe_schema(connection, schema)
        if used:
            data["credential"] = fingerprint(used)
    except psycopg2.Error as exc:
        detail, data = redact(f"query failed: {exc}".strip()), {}
    finally:
        connection.close()
    return CheckOutcome(not detail, _elapsed_ms(start), detail, data)


def _probe_schema(connection: Any, schema: str) -> tuple[str, dict[str, Any]]:
    """Return ("", data) when usable, else (reason, {}).

    information_schema.schemata only lists schemas the current role owns or
    holds a privilege on, and current_schema() is NULL without USAGE, so this
    proves access without depending on any table name.
    """
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "select 1 from information_schema.schemata where schema_name = %s", (schema,)
        )
        if cursor.fetchone() is None:
            return f"schema {schema} does not exist or is not visible to this role", {}
        cursor.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cursor.execute("select current_user, current_schema()")
        role, current = cursor.fetchone()
    if current != schema:
        return f"role {role} has no USAGE on schema {schema}", {}
    return "", {"role": role, "schema": current}


def basic_auth_header(client_id: str, client_secret: str) -> str:
    """RFC 6749 §2.3.1: both parts are form-urlencoded before base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


class TokenCache:
    """The last successful token exchange per (token URL, client, secret), until
    shortly before the token expires. A changed secret is a new entry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}

    @staticmethod
    def key(token_url: str, client_id: str, client_secret: str) -> str:
        return hashlib.sha256(f"{token_url}\0{client_id}\0{client_secret}".encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            until, data = self._entries.get(key, (0.0, {}))
        return data if time.monotonic() < until else None

    def put(self, key: str, data: dict[str, Any]) -> None:
        expires_in = data.get("expiresIn")
        if not isinstance(expires_in, int | float) or expires_in <= TOKEN_EXPIRY_MARGIN:
            return
        with self._lock:
            self._entries = {key: (time.monotonic() + expires_in - TOKEN_EXPIRY_MARGIN, data)}


TOKENS = TokenCache()


def check_oauth(
    token_url: str, client_id: str, client_secret: str, redact: Redactor
) -> CheckOutcome:
    """A token from the cache, or obtained with the client_credentials grant;
    never report the token itself."""
    key = TokenCache.key(token_url, client_id, client_secret)
    cached = TOKENS.get(key)
    if cached is not None:
        return CheckOutcome(True, 0.0, "", {**cached, "cached": True})
    start = time.perf_counter()
    try:
        status, raw = post_token_request(token_url, client_id, client_secret)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        detail = redact(f"token request failed: {exc.__class__.__name__}: {exc}")
        return CheckOutcome(False, _elapsed_ms(start), detail)
    detail, data = _read_token_response(status, raw)
    if not detail:
        TOKENS.put(key, data)
    return CheckOutcome(not detail, _elapsed_ms(start), redact(detail), data)


# http and https only, and no redirects or proxies from the environment: urllib's
# default opener would also follow file:, ftp: and data: URLs.
_OPENER = urllib.request.OpenerDirector()
for _handler in (
    urllib.request.HTTPHandler(),
    urllib.request.HTTPSHandler(),
    urllib.request.HTTPDefaultErrorHandler(),
    urllib.request.HTTPErrorProcessor(),
):
    _OPENER.add_handler(_handler)


def post_token_request(token_url: str, client_id: str, client_secret: str) -> tuple[int, bytes]:
    """The client_credentials grant over the standard library's HTTP client:
    requests' import was a sixth of an agent's boot (issue 16)."""
    if urlsplit(token_url).scheme not in ("http", "https"):
        raise ValueError(f"token URL must be http or https, not {token_url!r}")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        token_url,
        data=urlencode({"grant_type": "client_credentials"}).encode(),
        headers={
            "Authorization": basic_auth_header(client_id, client_secret),
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=TOKEN_TIMEOUT) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as refused:  # an answer all the same (401, 429...)
        with refused:
            return refused.code, refused.read()


def _read_token_response(status: int, raw: bytes) -> tuple[str, dict[str, Any]]:
    """Return ("", data) for a valid RFC 6749 §5.1 response, else (reason, data)."""
    data: dict[str, Any] = {"httpStatus": status}
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return f"token endpoint answered {status} without a JSON object", data
    if status != 200:
        # §5.2 error responses name the problem in "error"; that is safe to show.
        error = body.get("error", "unknown_error")
        return f"token endpoint answered {status}: {error}", data
    token, token_type = body.get("access_token"), body.get("token_type")
    if not isinstance(token, str) or not token:
        return "token response has no access_token", data
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        return f"unexpected token_type {token_type!r}", data
    data.update(tokenType=token_type, expiresIn=body.get("expires_in"))
    return "", data
