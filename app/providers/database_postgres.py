"""The tenant database: a schema, a login role that owns it, and baseline tables.

Isolation (see "Security model" in the README):
- tenants live in their own database (TENANT_DATABASE_URL); PUBLIC may not
  connect to it, each tenant role is granted CONNECT by name, and every other
  database of the stack refuses PUBLIC too (scripts/ensure_databases.py), so a
  tenant role reaches this database and nothing else;
- each role owns only its schema; PUBLIC keeps no rights on ``public``;
- the orchestrator's privileged session only manages roles, schemas and grants;
  whatever touches tenant tables logs in as the tenant (app/providers/postgres_access.py);
- every tenant role is a member of TENANT_GROUP, the handle pg_hba.conf uses to
  confine tenant logins on a shared server.
Every identifier goes through ``psycopg2.sql.Identifier``.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import psycopg2
import psycopg2.errors
from psycopg2 import sql
from sqlalchemy.engine import make_url

from app.providers import postgres_access as access
from app.providers.base import CheckResult, DepartmentContext, Stopwatch

PASSWORD_SECRET = "database_password"  # noqa: S105 - the secret's name, not its value
CONNECTION_LIMIT = 20
TENANT_GROUP = "po_tenants"
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
# Messages go first and are counted on their own: those of expired
# conversations (the cascade would delete them uncounted) and old ones.
PURGE_MESSAGES = (
    "DELETE FROM messages WHERE created_at < %(cutoff)s OR conversation_id IN"
    " (SELECT id FROM conversations WHERE started_at < %(cutoff)s)"
)
PURGE_CONVERSATIONS = "DELETE FROM conversations WHERE started_at < %(cutoff)s"


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

    @property
    def database(self) -> str:
        return str(self._params["dbname"])

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        password = context.secrets.get(PASSWORD_SECRET) or secrets.token_urlsafe(32)
        # Stored before the role exists so a crash between the two cannot leave
        # a role whose password nobody knows; a retry reuses it.
        context.secrets.put(PASSWORD_SECRET, password)
        schema, role = schema_name(context), role_name(context)
        self._create_role_and_schema(role, schema, password)
        # Committed above, so the role can log in: the tables and the settings
        # row are written by the tenant itself, never by the privileged session.
        with self._tenant(context, password) as conn, conn.cursor() as cur:
            cur.execute(BASELINE_DDL)
            cur.execute(
                "INSERT INTO tenant_settings (key, value)"
                " VALUES ('data_retention', to_jsonb(%s::text))"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (context.config.get("dataRetention", ""),),
            )
        return {
            "schema": schema,
            "role": role,
            "database": self._params["dbname"],
            "host": self._params["host"],
            "port": self._params["port"],
            "tables": list(BASELINE_TABLES),
        }

    def set_password(self, context: DepartmentContext, password: str) -> None:
        """The role's password becomes ``password`` (sent as a SCRAM verifier);
        sessions already open stay, new ones need the new password."""
        with self._admin() as conn, conn.cursor() as cur:
            self._upsert_role(cur, role_name(context), password)

    def _create_role_and_schema(self, role: str, schema: str, password: str) -> None:
        with self._admin() as conn, conn.cursor() as cur:
            # One lock for all tenants: concurrent REVOKE/GRANTs on the shared
            # public schema and database fail with "tuple concurrently updated".
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('tenant-database-setup'))")
            self._upsert_role(cur, role, password)
            access.revoke_public_access(cur, self.database)
            cur.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(self.database), sql.Identifier(role)
                )
            )
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

    @staticmethod
    def _upsert_role(cur: Any, role: str, password: str) -> None:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        verb = "ALTER" if cur.fetchone() else "CREATE"
        cur.execute(
            sql.SQL(verb + " ROLE {} LOGIN NOINHERIT CONNECTION LIMIT {} PASSWORD {}").format(
                sql.Identifier(role),
                sql.Literal(CONNECTION_LIMIT),
                sql.Literal(access.scram_verifier(password)),
            )
        )
        ensure_group(cur)
        _ensure_member(cur, TENANT_GROUP, role)
        cur.execute("SELECT rolsuper, rolname FROM pg_roles WHERE rolname = current_user")
        superuser, provisioner = cur.fetchone()
        if not superuser:
            # A CREATEROLE provisioning role must be a member of the roles it
            # creates to give them a schema and later drop what they own.
            _ensure_member(cur, role, provisioner)

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
                # Also revokes its CONNECT on this database (a shared object).
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
        except (psycopg2.Error, access.ProviderError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return CheckResult("database_connectivity", False, watch.elapsed_ms, detail)
        missing = sorted(set(BASELINE_TABLES) - tables)
        detail = f"missing tables: {', '.join(missing)}" if missing else ""
        return CheckResult("database_connectivity", not missing, watch.elapsed_ms, detail)

    def _tenant_tables(self, context: DepartmentContext, password: str) -> set[str]:
        with self._tenant(context, password) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema_name(context),),
            )
            return {row[0] for row in cur.fetchall()}

    def purge_expired(self, context: DepartmentContext, cutoff: datetime) -> dict[str, int]:
        """Deletes conversation data older than ``cutoff``, logged in as the tenant
        (its triggers run with its rights only). Returns the rows removed per table."""
        password = context.secrets.get(PASSWORD_SECRET)
        if password is None:
            raise access.ProviderError("no database password stored")
        with self._tenant(context, password) as conn, conn.cursor() as cur:
            cur.execute(PURGE_MESSAGES, {"cutoff": cutoff})
            messages = cur.rowcount
            cur.execute(PURGE_CONVERSATIONS, {"cutoff": cutoff})
            return {"conversations": cur.rowcount, "messages": messages}

    def _admin(self) -> Any:
        return access.admin_session(self._params, self._statement_timeout_ms)

    def _tenant(self, context: DepartmentContext, password: str) -> Any:
        return access.tenant_session(
            self._params,
            role_name(context),
            password,
            schema_name(context),
            self._statement_timeout_ms,
        )


def _ensure_member(cur: Any, group: str, member: str) -> None:
    cur.execute(
        "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
        " JOIN pg_roles r ON r.oid = m.member WHERE g.rolname = %s AND r.rolname = %s",
        (group, member),
    )
    if cur.fetchone() is None:
        cur.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(member)))


def ensure_group(cur: Any) -> None:
    """The NOLOGIN group every tenant role belongs to (and nothing else): it holds
    no rights; it exists so pg_hba.conf can name all tenants as ``+po_tenants``."""
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (TENANT_GROUP,))
    if cur.fetchone() is not None:
        return
    cur.execute("SAVEPOINT tenant_group")
    try:
        cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(TENANT_GROUP)))
    except (psycopg2.errors.DuplicateObject, psycopg2.errors.UniqueViolation):
        # Another stack on this server created it at the same moment.
        cur.execute("ROLLBACK TO SAVEPOINT tenant_group")
