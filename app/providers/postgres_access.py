"""How the orchestrator talks to PostgreSQL near tenant objects.

Two kinds of session, never mixed:

- ``admin_session``: the provisioning identity (TENANT_DATABASE_URL's user).
  It creates and drops roles and schemas and grants rights, and never reads,
  writes or calls anything a tenant can define: a tenant owns its schema, so
  any table there may carry a trigger, rule or default that runs tenant code.
  Its ``search_path`` is pinned to ``pg_catalog, pg_temp`` so no unqualified
  name resolves into a tenant's schema.
- ``tenant_session``: logs in as the tenant's own role with its own password.
  Everything that touches tenant data (baseline tables, settings, retention)
  runs here, so tenant code fires with the tenant's rights and no more: a
  trigger's ``RESET ROLE`` lands back on the tenant itself, not on a
  superuser (issue 9, item 1).

Passwords travel as SCRAM-SHA-256 verifiers computed here, so the plain text
never reaches the server, its log or ``pg_stat_activity``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.errors
from psycopg2 import sql
from psycopg2.extensions import connection as Connection

from app.providers.base import ProviderError, TransientProviderError

SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)
ADMIN_SEARCH_PATH = "pg_catalog,pg_temp"
# psycopg2 errors that mean "try again": the server went away, is overloaded,
# or another transaction got in the way.
TRANSIENT_ERRORS = (
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    psycopg2.errors.SerializationFailure,
    psycopg2.errors.DeadlockDetected,
)


def scram_verifier(
    password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS
) -> str:
    """The value PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677).

    ``ALTER ROLE … PASSWORD '<verifier>'`` stores it as is; the server can check
    a login against it but nobody can read the password back out of it. Our
    passwords are ASCII (token_urlsafe), for which SASLprep is the identity.
    """
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def connect(params: dict[str, Any], options: str) -> Connection:
    try:
        return psycopg2.connect(**params, connect_timeout=5, options=options)
    except TRANSIENT_ERRORS as exc:
        raise TransientProviderError(f"tenant database unreachable: {exc}") from exc
    except psycopg2.Error as exc:
        raise ProviderError(f"tenant database refused the login: {exc}") from exc


@contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """One committed transaction on ``conn``; the connection is closed after."""
    try:
        with conn:
            yield conn
    except TRANSIENT_ERRORS as exc:
        raise TransientProviderError(f"tenant database error: {exc}") from exc
    except psycopg2.Error as exc:
        raise ProviderError(f"tenant database refused: {exc}") from exc
    finally:
        conn.close()


def session_options(statement_timeout_ms: int, search_path: str) -> str:
    return f"-c statement_timeout={statement_timeout_ms} -c search_path={search_path}"


@contextmanager
def admin_session(params: dict[str, Any], statement_timeout_ms: int) -> Iterator[Connection]:
    options = session_options(statement_timeout_ms, ADMIN_SEARCH_PATH)
    with transaction(connect(params, options)) as conn:
        yield conn


@contextmanager
def tenant_session(
    params: dict[str, Any], role: str, password: str, schema: str, statement_timeout_ms: int
) -> Iterator[Connection]:
    """Logged in as ``role`` itself; unqualified names resolve in its schema
    (pg_catalog still first), whatever the role set for itself."""
    login = {**params, "user": role, "password": password}
    options = session_options(statement_timeout_ms, schema)
    with transaction(connect(login, options)) as conn:
        yield conn


def revoke_public_access(cur: Any, database: str) -> None:
    """Nobody but the owner and roles granted it by name may connect or make
    temporary tables here (PUBLIC gets both on every new database)."""
    cur.execute(
        sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
            sql.Identifier(database)
        )
    )
