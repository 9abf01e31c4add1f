"""The tenant database: a schema, a login role that owns it, and baseline tables.

Isolation: tenants live in their own database (TENANT_DATABASE_URL), each role
owns only its schema, PUBLIC keeps no rights on the shared ``public`` schema, and
the orchestrator's database refuses CONNECT to PUBLIC (see the first migration).
Every identifier goes through ``psycopg2.sql.Identifier``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.errors
from psycopg2 import sql
from psycopg2.extensions import connection as Connection
from sqlalchemy.engine import make_url

from app.providers.base import (
    CheckResult,
    DepartmentContext,
    ProviderError,
    Stopwatch,
    TransientProviderError,
)

PASSWORD_SECRET = "database_password"  # noqa: S105 - the secret's name, not its value
CONNECTION_LIMIT = 20
BASELINE_TABLES: tuple[str, ...] = ("conversations", "messages", "tenant_settings")
BASELINE_DDL = """
CREATE TABLE IF NOT EXISTS conversations (
    id BIGSERIAL PRIMARY KEY,
    channel TEXT NOT NULL DEFAULT 'voice',
    caller TEXT,
    summary TEXT,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS messages (
    id BIGSERIAL PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    speaker TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS tenant_settings (
    key TEXT PRIMARY KEY,
    value JSONB NOT NULL
);
"""
# psycopg2 errors that mean "try again": the server went away, is overloaded,
# or another transaction got in the way.
TRANSIENT_ERRORS = (
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    psycopg2.errors.SerializationFailure,
    psycopg2.errors.DeadlockDetected,
)


def schema_name(context: DepartmentContext) -> str:
    return f"{context.slug}_tenant"


def role_name(context: DepartmentContext) -> str:
    return f"{context.slug}_role"


class PostgresTenantProvider:
    name = "database"

    def __init__(self, *, tenant_database_url: str, statement_timeout_ms: int = 30000) -> None:
        url = make_url(tenant_database_url)
        self._params: dict[str, Any] = {
            "host": url.host or "127.0.0.1",
            "port": url.port or 5432,
            "dbname": url.database,
            "user": url.username,
            "password": url.password,
        }
        self._statement_timeout_ms = statement_timeout_ms

    @contextmanager
    def _admin(self) -> Iterator[Connection]:
        """An admin connection whose work commits as one transaction."""
        try:
            conn = psycopg2.connect(
                **self._params,
                connect_timeout=5,
                options=f"-c statement_timeout={self._statement_timeout_ms}",
            )
        except TRANSIENT_ERRORS as exc:
            raise TransientProviderError(f"tenant database unreachable: {exc}") from exc
        try:
            with conn:
                yield conn
        except TRANSIENT_ERRORS as exc:
            raise TransientProviderError(f"tenant database error: {exc}") from exc
        except psycopg2.Error as exc:
            raise ProviderError(f"tenant database refused: {exc}") from exc
        finally:
            conn.close()

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        password = context.secrets.get(PASSWORD_SECRET) or secrets.token_urlsafe(32)
        # Stored before the role exists so a crash between the two cannot leave
        # a role whose password nobody knows; a retry reuses it.
        context.secrets.put(PASSWORD_SECRET, password)
        schema, role = schema_name(context), role_name(context)
        with self._admin() as conn, conn.cursor() as cur:
            # One lock for all tenants: concurrent REVOKEs on the shared public
            # schema fail with "tuple concurrently updated", and a create is quick.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('tenant-database-setup'))")
            self._upsert_role(cur, role, password)
            cur.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            cur.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                    sql.Identifier(schema), sql.Identifier(role)
                )
            )
            cur.execute(
                sql.SQL("ALTER ROLE {} SET search_path = {}").format(
                    sql.Identifier(role), sql.Identifier(schema)
                )
            )
            self._create_baseline(cur, schema, role, context)
        return {
            "schema": schema,
            "role": role,
            "database": self._params["dbname"],
            "host": self._params["host"],
            "port": self._params["port"],
            "tables": list(BASELINE_TABLES),
        }

    @staticmethod
    def _upsert_role(cur: Any, role: str, password: str) -> None:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        verb = "ALTER" if cur.fetchone() else "CREATE"
        cur.execute(
            sql.SQL(verb + " ROLE {} LOGIN NOINHERIT CONNECTION LIMIT {} PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(CONNECTION_LIMIT), sql.Literal(password)
            )
        )

    @staticmethod
    def _create_baseline(cur: Any, schema: str, role: str, context: DepartmentContext) -> None:
        """Created as the tenant role, so the tenant owns its tables outright."""
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        cur.execute(sql.SQL("SET LOCAL search_path = {}").format(sql.Identifier(schema)))
        cur.execute(BASELINE_DDL)
        cur.execute(
            "INSERT INTO tenant_settings (key, value) VALUES ('data_retention', to_jsonb(%s::text))"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (context.config.get("dataRetention", ""),),
        )
        cur.execute("RESET ROLE")

    def delete(self, context: DepartmentContext) -> None:
        schema, role = schema_name(context), role_name(context)
        with self._admin() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if cur.fetchone():
                cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        context.secrets.delete(PASSWORD_SECRET)

    def check(self, context: DepartmentContext) -> CheckResult:
        """Connects as the tenant role itself: proves the credentials and the grants."""
        watch = Stopwatch()
        password = context.secrets.get(PASSWORD_SECRET)
        if password is None:
            return CheckResult(
                "database_connectivity", False, watch.elapsed_ms, "no password stored"
            )
        try:
            tables = self._tenant_tables(context, password)
        except psycopg2.Error as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return CheckResult("database_connectivity", False, watch.elapsed_ms, detail)
        missing = sorted(set(BASELINE_TABLES) - tables)
        detail = f"missing tables: {', '.join(missing)}" if missing else ""
        return CheckResult("database_connectivity", not missing, watch.elapsed_ms, detail)

    def _tenant_tables(self, context: DepartmentContext, password: str) -> set[str]:
        params = {**self._params, "user": role_name(context), "password": password}
        conn = psycopg2.connect(**params, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (schema_name(context),),
                )
                return {row[0] for row in cur.fetchall()}
        finally:
            conn.close()
