"""The tenant database provider driven by a non-superuser provisioning role, as
the README's "Security model" recommends: CREATEROLE, owner of the tenants
database, nothing more. Every operation of the provider must work with it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from psycopg2 import sql

from app.providers.base import DepartmentContext
from app.providers.database_postgres import TENANT_GROUP, PostgresTenantProvider, ensure_group
from tests.conftest import TEST_DB, TEST_PREFIX
from tests.support.agent_env import MemorySecrets
from tests.support.tenant_db import connect_as_tenant

PROVISIONER = f"{TEST_PREFIX}_provisioner"
DATABASE = f"{TEST_DB}_provisioner_tenants"


def _admin(*statements: sql.Composable | str, dbname: str = "postgres") -> None:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=dbname)
    conn.autocommit = True
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    conn.close()


def _teardown() -> None:
    role, database = sql.Identifier(PROVISIONER), sql.Identifier(DATABASE)
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (PROVISIONER,))
        if cur.fetchone():
            cur.execute(sql.SQL("DROP OWNED BY {}").format(role))
            cur.execute(sql.SQL("DROP ROLE {}").format(role))
    conn.close()


@pytest.fixture()
def provider() -> Iterator[PostgresTenantProvider]:
    """The README's recipe, then the provider pointed at it."""
    _teardown()
    role, database = sql.Identifier(PROVISIONER), sql.Identifier(DATABASE)
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    with conn, conn.cursor() as cur:
        ensure_group(cur)
    conn.close()
    _admin(
        sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(role),
        sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(sql.Identifier(TENANT_GROUP), role),
        sql.SQL("CREATE DATABASE {} OWNER {}").format(database, role),
    )
    try:
        yield PostgresTenantProvider(
            tenant_database_url=f"postgresql+psycopg2://{PROVISIONER}@127.0.0.1:5432/{DATABASE}"
        )
    finally:
        _teardown()


def _context(secrets: MemorySecrets) -> DepartmentContext:
    department_id = f"{TEST_PREFIX}p{uuid.uuid4().hex[:8]}"
    return DepartmentContext(department_id, {"dataRetention": "30d"}, {}, secrets)


def _exists(role: str) -> bool:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        found = cur.fetchone() is not None
    conn.close()
    return found


def test_a_non_superuser_provisioning_role_runs_every_operation(
    provider: PostgresTenantProvider,
) -> None:
    secrets = MemorySecrets()
    context = _context(secrets)
    outputs = provider.create(context)
    provider.create(context)  # idempotent, as a retry or a repair runs it
    assert provider.check(context).healthy, provider.check(context)

    password = secrets.get("database_password")
    assert password is not None
    tenant = connect_as_tenant(context.department_id, password, DATABASE)
    with tenant.cursor() as cur:
        cur.execute(
            "INSERT INTO conversations (caller, started_at)"
            " VALUES ('old', now() - interval '40 days')"
        )
        cur.execute("SELECT value FROM tenant_settings WHERE key = 'data_retention'")
        assert cur.fetchone() == ("30d",)
    removed = provider.purge_expired(context, datetime.now(UTC) - timedelta(days=30))
    assert removed == {"conversations": 1, "messages": 0}

    provider.delete(context)  # also ends the tenant's open session
    assert tenant.closed or _session_ended(tenant)
    assert not _exists(outputs["role"])
    provider.delete(context)  # idempotent


def _session_ended(conn: psycopg2.extensions.connection) -> bool:
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    except psycopg2.Error:
        return True
    return False
