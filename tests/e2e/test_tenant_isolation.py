"""A tenant attacks the orchestrator through PostgreSQL (issue 9, items 1 and 3).

The tenant logs in with its own credentials, plants code on every table it owns
(triggers on INSERT, UPDATE, DELETE and TRUNCATE, row and statement level) and
functions that shadow names the orchestrator calls, each trying to RESET ROLE
and make itself superuser or a member of powerful roles. Then the operator does
everything it does to a department; no role may come out with more than it had.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import psycopg2
import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg2 import sql

from app import config
from tests.conftest import (
    STATE_URL,
    TENANT_URL,
    TEST_DB,
    Stack,
    department_payload,
    new_department_id,
)
from tests.e2e.conftest import submit, wait_for_job
from tests.support import stack, tenant_db
from tests.support.tenant_db import gained, role_snapshot

TENANTS_DB = f"{TEST_DB}_tenants"
BASELINE = ("conversations", "messages", "tenant_settings")
# Names the orchestrator's SQL calls, with the exact argument types that beat
# pg_catalog's more general versions when the tenant's schema is searched.
SHADOWS = {
    "to_jsonb(text)": ("jsonb", "RETURN pg_catalog.to_jsonb($1);"),
    "now()": ("timestamptz", "RETURN pg_catalog.now();"),
    "hashtext(text)": ("integer", "RETURN pg_catalog.hashtext($1);"),
    "pg_advisory_xact_lock(integer)": (
        "void",
        "PERFORM pg_catalog.pg_advisory_xact_lock($1::bigint);",
    ),
    "pg_terminate_backend(integer)": ("boolean", "RETURN false;"),
}
ESCALATE = """
CREATE OR REPLACE FUNCTION escalate(origin text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  BEGIN
    RESET ROLE;
    EXECUTE format('ALTER ROLE %I SUPERUSER CREATEROLE CREATEDB REPLICATION BYPASSRLS', {role});
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  BEGIN
    RESET ROLE;
    EXECUTE format('GRANT pg_execute_server_program, pg_read_server_files, pg_signal_backend'
                   ' TO %I', {role});
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  INSERT INTO {schema}.attack_log (origin, as_session, as_current)
  VALUES (origin, session_user, current_user);
END $f$;
CREATE OR REPLACE FUNCTION on_write() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM {schema}.escalate(TG_TABLE_NAME || ' ' || TG_LEVEL || ' ' || TG_OP);
  IF TG_LEVEL = 'ROW' THEN RETURN COALESCE(NEW, OLD); END IF;
  RETURN NULL;
END $f$;
"""


def plant(cur: Any, role: str, schema: str) -> None:
    """Everything a tenant may attach code to, armed."""
    ident = {"role": sql.Literal(role), "schema": sql.Identifier(schema)}
    cur.execute(
        "CREATE TABLE IF NOT EXISTS attack_log (origin text, as_session name, as_current name,"
        " at timestamptz DEFAULT clock_timestamp())"
    )
    cur.execute(sql.SQL(ESCALATE).format(**ident))
    for table in BASELINE:
        for level in ("ROW", "STATEMENT"):
            events = "INSERT OR UPDATE OR DELETE" + (" OR TRUNCATE" if level == "STATEMENT" else "")
            name = sql.Identifier(f"attack_{level.lower()}")
            cur.execute(
                sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(name, sql.Identifier(table))
            )
            cur.execute(
                sql.SQL(
                    "CREATE TRIGGER {} BEFORE "
                    + events
                    + " ON {} FOR EACH "
                    + level
                    + " EXECUTE FUNCTION {}.on_write()"
                ).format(name, sql.Identifier(table), sql.Identifier(schema))
            )
    for signature, (returns, body) in SHADOWS.items():
        cur.execute(
            sql.SQL(
                "CREATE OR REPLACE FUNCTION {}."
                + signature
                + " RETURNS "
                + returns
                + " LANGUAGE plpgsql AS $f$ BEGIN PERFORM {}.escalate({}); "
                + body
                + " END $f$"
            ).format(sql.Identifier(schema), sql.Identifier(schema), sql.Literal(signature))
        )


def _tenant(department_id: str, env: dict[str, str]) -> Any:
    password = tenant_db.department_password(department_id, env["SECRETS_KEY"])
    return tenant_db.connect_as_tenant(department_id, password, TENANTS_DB)


def _armed_department(client: FlaskClient, headers: dict[str, str], env: dict[str, str]) -> str:
    payload = department_payload(dataRetention="90d")
    view = wait_for_job(submit(client, headers, payload))
    assert view["status"] == "completed", view
    department_id = str(payload["departmentId"])
    role, schema = tenant_db.names(department_id)
    conn = _tenant(department_id, env)
    with conn.cursor() as cur:
        plant(cur, role, schema)
        # The shared schema is closed: no shadowing from there either.
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(
                "CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql"
                " AS 'SELECT pg_catalog.now()'"
            )
    conn.close()
    return department_id


def _attack_log(department_id: str, env: dict[str, str]) -> list[tuple[str, str, str]]:
    conn = _tenant(department_id, env)
    with conn.cursor() as cur:
        cur.execute("SELECT origin, as_session, as_current FROM attack_log ORDER BY at")
        rows = cur.fetchall()
    conn.close()
    return rows


def _run_job(response: Any) -> None:
    assert response.status_code == 202, response.get_json()
    view = wait_for_job(str(response.get_json()["provisioningId"]))
    assert view["status"] == "completed", view


def test_tenant_code_never_runs_with_the_orchestrators_rights(
    app: Flask, live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    from app.domain.services.cleanup import cleanup_department
    from app.domain.services.drift import detect_drift
    from app.domain.services.job_records import context_for
    from app.persistence.database import db
    from app.persistence.models import Department
    from app.providers.registry import provider

    env = live_stack.env
    settings = config.current()
    victim = _armed_department(client, admin_headers, env)
    other = _armed_department(client, admin_headers, env)
    role, _ = tenant_db.names(victim)
    before = role_snapshot()
    escalations: dict[str, list[str]] = {}

    def after(action: str) -> None:
        escalations[action] = gained(before, role_snapshot())

    # create: the database step itself, as the saga runs it.
    with db.transaction() as session:
        department = session.query(Department).filter_by(department_id=victim).one()
        context = context_for(department, settings)
    provider(settings, "database").create(context)
    after("create")
    url = f"/api/departments/{victim}"
    _run_job(client.patch(url, headers=admin_headers, json={"dataRetention": "30d"}))
    after("update")
    conn = _tenant(victim, env)
    with conn.cursor() as cur:  # the tenant breaks its own baseline: repair re-creates it
        cur.execute("DROP TABLE messages")
    conn.close()
    _run_job(client.post(f"{url}/repair", headers=admin_headers))
    after("repair")
    conn = _tenant(victim, env)
    with conn.cursor() as cur:
        plant(cur, *tenant_db.names(victim))  # the re-created table is armed again
    conn.close()
    detect_drift(settings)
    after("drift check")
    retention = app.extensions["celery"].send_task("provisioning.enforce_retention")
    assert any(line.startswith(f"{victim}: {{") for line in retention.get(timeout=60))
    after("retention")
    fired = _attack_log(victim, env)
    report = cleanup_department(other, settings, force=True)
    assert report.ok, report.lines
    after("cleanup")
    response = client.delete(f"/api/deprovision/{victim}", headers=admin_headers)
    assert response.status_code == 202, response.get_json()
    assert wait_for_job(str(response.get_json()["provisioningId"]))["status"] == "completed"
    after("deprovision")

    assert {action: found for action, found in escalations.items() if found} == {}
    # The traps did fire (the test is not vacuous), and only ever as the tenant.
    origins = {origin.split()[0] for origin, _, _ in fired}
    assert {"tenant_settings", "to_jsonb(text)"} <= origins, fired
    assert "messages STATEMENT DELETE" in {origin for origin, _, _ in fired}, fired
    assert {(session, current) for _, session, current in fired} == {(role, role)}, fired


def test_a_tenant_role_connects_only_to_its_own_tenants_database(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    from app.providers.database_lockdown import ensure

    payload = department_payload()
    view = wait_for_job(submit(client, admin_headers, payload))
    assert view["status"] == "completed", view
    department_id = str(payload["departmentId"])
    password = tenant_db.department_password(department_id, live_stack.env["SECRETS_KEY"])
    # A tenants database created later by the stack's own path (another
    # checkout, or TENANT_DATABASE_URL moved) is closed from its birth.
    later = f"{TEST_DB}_later_tenants"
    ensure(TENANT_URL.rsplit("/", 1)[0] + f"/{later}")
    refused = {}
    try:
        for dbname in ("postgres", "template1", "n8n", TEST_DB, later):
            with pytest.raises(psycopg2.OperationalError) as denied:
                tenant_db.connect_as_tenant(department_id, password, dbname).close()
            refused[dbname] = str(denied.value)
    finally:
        _drop_database(later)
    assert all("permission denied for database" in why for why in refused.values()), refused
    conn = tenant_db.connect_as_tenant(department_id, password, TENANTS_DB)
    with conn.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone() == (tenant_db.names(department_id)[0],)
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("CREATE TEMP TABLE scratch (x int)")
    conn.close()


def _drop_database(name: str) -> None:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    conn.close()


def test_make_migrate_closes_the_databases_and_lets_older_tenants_in_by_name(
    live_stack: Stack,
) -> None:
    """A tenant created before these rules (schema and role only, no grant, no
    group) keeps working after the upgrade's `scripts/ensure_databases.py`."""
    role, schema = tenant_db.names(new_department_id())
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TENANTS_DB)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        cur.execute(
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                sql.Identifier(schema), sql.Identifier(role)
            )
        )
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        psycopg2.connect(host="127.0.0.1", user=role, dbname=TENANTS_DB).close()

    stack_env = {**live_stack.env, "DATABASE_URL": STATE_URL, "TENANT_DATABASE_URL": TENANT_URL}
    subprocess.run(
        [sys.executable, "scripts/ensure_databases.py"],
        cwd=stack.ROOT,
        env=stack_env,
        check=True,
        timeout=60,
        capture_output=True,
    )

    psycopg2.connect(host="127.0.0.1", user=role, dbname=TENANTS_DB).close()
    with conn.cursor() as cur:
        cur.execute(
            "SELECT datname FROM pg_database WHERE has_database_privilege('public', oid, 'CONNECT')"
        )
        open_to_public = {row[0] for row in cur.fetchall()}
        cur.execute("SELECT pg_has_role(%s, 'po_tenants', 'MEMBER')", (role,))
        in_group = cur.fetchone()[0]
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    conn.close()
    assert in_group
    stack_databases = {"postgres", "template1", "n8n", TEST_DB, TENANTS_DB}
    assert open_to_public & stack_databases == set()
