"""Creating the stack's databases and closing every one of them to PUBLIC
(scripts/ensure_databases.py runs this at `make migrate`/`make up`; the tests too).

A new PostgreSQL database lets PUBLIC connect and create temporary tables, so
without this a tenant role could log in to ``postgres``, ``template1``, n8n's
database or another stack's tenants database and read their catalogues. After
it, a tenant role connects only where it was granted CONNECT by name: its own
tenants database. Roles of tenants created before this rule existed get that
grant here, so they keep working.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import make_url

from app.providers.database_postgres import TENANT_GROUP, ensure_group
from app.providers.postgres_access import revoke_public_access

logger = logging.getLogger("provisioning.database")

# Databases of this stack besides the two named by the settings: the
# maintenance database, the template every CREATE DATABASE copies, n8n's.
STACK_DATABASES: tuple[str, ...] = ("postgres", "template1", "n8n")


def _connect(url_text: str, dbname: str, autocommit: bool = True) -> Any:
    url = make_url(url_text)
    conn = psycopg2.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=dbname,
        options="-c search_path=pg_catalog,pg_temp",
    )
    conn.autocommit = autocommit
    return conn


def ensure(url_text: str) -> None:
    """Creates the database if missing; a new one is closed to PUBLIC at birth."""
    database = str(make_url(url_text).database)
    conn = _connect(url_text, "postgres")
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            logger.warning("created database %s", database)
        revoke_public_access(cur, database)
    conn.close()


def lock_down(url_text: str, databases: tuple[str, ...] = STACK_DATABASES) -> list[str]:
    """Closes each existing one of ``databases`` to PUBLIC; returns those closed."""
    conn = _connect(url_text, "postgres", autocommit=False)
    closed = []
    with conn, conn.cursor() as cur:
        # Serialises with other stacks doing the same: concurrent REVOKEs on one
        # pg_database row fail with "tuple concurrently updated".
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('stack-database-lockdown'))")
        for database in databases:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is not None:
                revoke_public_access(cur, database)
                closed.append(database)
    conn.close()
    return closed


def grant_existing_tenants(tenant_url: str) -> list[str]:
    """CONNECT and group membership for tenant roles that predate them: every
    owner of a ``*_tenant`` schema named ``*_role``."""
    database = str(make_url(tenant_url).database)
    conn = _connect(tenant_url, database, autocommit=False)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('tenant-database-setup'))")
        cur.execute(
            "SELECT r.rolname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner"
            " WHERE n.nspname LIKE '%\\_tenant' AND r.rolname LIKE '%\\_role'"
            " AND NOT r.rolsuper ORDER BY 1"
        )
        roles = [row[0] for row in cur.fetchall()]
        ensure_group(cur)
        for role in roles:
            cur.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(database), sql.Identifier(role)
                )
            )
            cur.execute(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(TENANT_GROUP), sql.Identifier(role))
            )
    conn.close()
    return roles
