"""Real peers for the local department agent: a tenant in PostgreSQL and a token endpoint.

The OAuth server proper is built elsewhere; ``TokenEndpoint`` is a small but real
RFC 6749 client_credentials endpoint over HTTP, enough to prove the agent sends
its own client credentials and reacts to a refusal.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import psycopg2
from psycopg2 import sql

ADMIN_DSN = os.environ.get(
    "TEST_POSTGRES_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)


class MemorySecrets:
    """The SecretStore protocol over a dict; the real one encrypts into the orchestrator DB."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = dict(values or {})

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def put(self, name: str, value: str) -> None:
        self.values[name] = value

    def delete(self, name: str) -> None:
        self.values.pop(name, None)


def admin_connection() -> Any:
    connection = psycopg2.connect(ADMIN_DSN, connect_timeout=3)
    connection.autocommit = True
    return connection


def database_name() -> str:
    with admin_connection() as connection, connection.cursor() as cursor:
        cursor.execute("select current_database()")
        name: str = cursor.fetchone()[0]
    connection.close()
    return name


@dataclass
class TenantDatabase:
    """A throwaway login role with a password, owning ``<slug>_tenant``."""

    slug: str
    password: str = field(default_factory=lambda: "pw-" + secrets.token_urlsafe(18))

    @property
    def role(self) -> str:
        return f"{self.slug}_role"

    @property
    def schema(self) -> str:
        return f"{self.slug}_tenant"

    def create(self) -> TenantDatabase:
        self._run(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(self.role), sql.Literal(self.password)
            ),
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                sql.Identifier(self.schema), sql.Identifier(self.role)
            ),
            # Databases of the stack refuse PUBLIC (app/providers/database_lockdown.py):
            # like a real tenant, this one is let in by name.
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(database_name()), sql.Identifier(self.role)
            ),
        )
        return self

    def drop_schema(self) -> None:
        self._run(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))

    def drop(self) -> None:
        self.drop_schema()
        role = sql.Identifier(self.role)
        connection = admin_connection()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.role,))
                if cursor.fetchone():
                    # Also takes back its CONNECT grant, which DROP ROLE would refuse.
                    cursor.execute(sql.SQL("DROP OWNED BY {}").format(role))
                    cursor.execute(sql.SQL("DROP ROLE {}").format(role))
        finally:
            connection.close()

    def _run(self, *statements: sql.Composable) -> None:
        connection = admin_connection()
        try:
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            connection.close()


class TokenEndpoint:
    """Threaded HTTP token endpoint: client_credentials with HTTP Basic, or 401."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.granted = 0
        self.refused = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/oauth/token"

    def start(self) -> TokenEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def authenticate(self, authorization: str, body: str) -> bool:
        if parse_qs(body).get("grant_type") != ["client_credentials"]:
            return False
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
        # RFC 6749 §2.3.1: both parts are form-urlencoded inside the Basic header.
        return (unquote_plus(client_id), unquote_plus(client_secret)) == (
            self.client_id,
            self.client_secret,
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                if endpoint.authenticate(self.headers.get("Authorization", ""), body):
                    endpoint.granted += 1
                    token = {"access_token": secrets.token_urlsafe(24), "token_type": "Bearer"}
                    self._reply(200, {**token, "expires_in": 60})
                else:
                    endpoint.refused += 1
                    self._reply(401, {"error": "invalid_client"})

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def pids_with_marker(department_id: str) -> list[int]:
    """Every process started for this department, independent of the provider's code."""
    marker = f"AGENT_DEPARTMENT_ID={department_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ and b"AGENT_MANAGED_BY=provisioning-orchestrator" in environ:
            found.append(int(entry.name))
    return sorted(found)


def kill_leftovers(department_id: str) -> list[int]:
    """Last-resort cleanup so a failing test cannot leave agents behind."""
    leftovers = pids_with_marker(department_id)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return leftovers
