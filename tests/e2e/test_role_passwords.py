"""Role passwords reach PostgreSQL only as SCRAM verifiers (issue 9, item 10):
with every statement logged, the server log never shows a password."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
from flask.testing import FlaskClient

from tests.conftest import TEST_DB, TEST_PREFIX, Stack, department_payload
from tests.e2e.conftest import submit, wait_for_job
from tests.support import stack, tenant_db

SERVER_LOG = Path(os.environ.get("PG_SERVER_LOG", "/var/log/postgresql/postgresql-15-main.log"))


def _admin(statement: str) -> None:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(statement)
    conn.close()


@pytest.fixture()
def server_log() -> Iterator[Callable[[], str]]:
    if not os.access(SERVER_LOG, os.R_OK):
        pytest.fail(f"cannot read the PostgreSQL server log at {SERVER_LOG} (set PG_SERVER_LOG)")
    start = SERVER_LOG.stat().st_size

    def written() -> str:
        with SERVER_LOG.open(errors="replace") as log:
            log.seek(start)
            return log.read()

    yield written


def _verifier(role: str) -> str:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    with conn.cursor() as cur:
        cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
        row = cur.fetchone()
    conn.close()
    assert row is not None
    return str(row[0])


def test_a_tenant_password_is_never_in_the_server_log(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    server_log: Callable[[], str],
) -> None:
    # Only this session's own tenants database logs every statement, and only here.
    _admin(f"ALTER DATABASE \"{TEST_DB}_tenants\" SET log_statement = 'all'")
    try:
        payload = department_payload()
        view = wait_for_job(submit(client, admin_headers, payload))
    finally:
        _admin(f'ALTER DATABASE "{TEST_DB}_tenants" RESET log_statement')
    assert view["status"] == "completed", view
    department_id = str(payload["departmentId"])
    role, _ = tenant_db.names(department_id)
    password = tenant_db.department_password(department_id, live_stack.env["SECRETS_KEY"])

    logged = server_log()
    assert f'ROLE "{role}" LOGIN' in logged  # statements were logged: not vacuous
    assert password not in logged
    assert _verifier(role).startswith("SCRAM-SHA-256$")


def test_the_n8n_password_helper_sends_a_verifier_read_from_a_file(
    tmp_path: Path, server_log: Callable[[], str]
) -> None:
    role = f"{TEST_PREFIX}pwtest_role"  # dropped with the session's test roles
    _admin(f'DROP ROLE IF EXISTS "{role}"')
    _admin(f'CREATE ROLE "{role}"')
    secret = tmp_path / "db-password"
    secret.write_text("n8n-secret-" + os.urandom(12).hex())
    env = {**os.environ, "PYTHONPATH": str(stack.ROOT), "PGOPTIONS": "-c log_statement=all"}
    try:
        subprocess.run(
            [sys.executable, "scripts/set_role_password.py", role, str(secret)],
            cwd=stack.ROOT,
            env=env,
            check=True,
            timeout=60,
        )
        logged = server_log()
        assert f'ALTER ROLE "{role}" WITH LOGIN PASSWORD' in logged
        assert secret.read_text() not in logged
        assert _verifier(role).startswith("SCRAM-SHA-256$")
    finally:
        _admin(f'DROP ROLE IF EXISTS "{role}"')
    script = (stack.ROOT / "scripts" / "n8n.sh").read_text()
    assert 'set_role_password.py" n8n "$DB_PASSWORD_FILE"' in script
    assert "-v pw=" not in script  # the password is on no command line any more
