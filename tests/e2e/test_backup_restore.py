"""The README's backup and restore procedure, run for real.

Backed up: the state database, the tenants database, the roles, and the key.
Then the department is lost entirely (deprovisioned on the old stack), and a
fresh stack (its own databases, Redis, Caddy, API, worker and run directory)
is restored from the backups with pg_restore plus `flask provisioning repair`,
ending healthy with the tenant's data in place.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import (
    SLOT,
    TEST_DB,
    Stack,
    _drop_databases,
    department_payload,
    make_token,
)
from tests.e2e.conftest import leftovers, submit, wait_for_job
from tests.support import keys, stack

BASE = 30000 + 1000 * SLOT + 100  # in this slot's range (below the ephemeral ports for slot 0)
FRESH_DB = f"{TEST_DB}_restored"
FRESH = {"api": BASE + 1, "gateway": BASE + 80, "redis": BASE + 79}


def _run(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result.stdout


def _backup(into: Path, role: str) -> None:
    """README, "Backup": two pg_dumps, the roles, and the key (kept by the test)."""
    _run(
        "pg_dump",
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-Fc",
        "-f",
        str(into / "state.dump"),
        TEST_DB,
    )
    _run(
        "pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-Fc",
        "-f", str(into / "tenants.dump"), f"{TEST_DB}_tenants",
    )  # fmt: skip
    roles = _run("pg_dumpall", "-h", "127.0.0.1", "-U", "postgres", "--roles-only")
    # On this shared server every other role is alive; a fresh server runs the whole file.
    named = re.compile(rf'\bROLE "?{role}"?[ ;]')
    mine = [line for line in roles.splitlines() if named.search(line)]
    assert any(line.startswith("CREATE ROLE") for line in mine), mine
    (into / "roles.sql").write_text("\n".join(mine) + "\n")


def _restore(frm: Path) -> None:
    """README, "Restore": roles first, then both databases, on the new server."""
    _drop_databases(FRESH_DB, f"{FRESH_DB}_tenants")
    psql = ("psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1")
    _run(*psql, "-d", "postgres", "-f", str(frm / "roles.sql"))
    for name, dump in ((FRESH_DB, "state.dump"), (f"{FRESH_DB}_tenants", "tenants.dump")):
        _run("createdb", "-h", "127.0.0.1", "-U", "postgres", name)
        _run("pg_restore", "-h", "127.0.0.1", "-U", "postgres", "-d", name, str(frm / dump))


@pytest.fixture()
def fresh_stack(live_stack: Stack, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Every process of a second stack, pointed at the restored databases."""
    run_dir = tmp_path / "fresh-run"
    run_dir.mkdir()
    env = {
        **live_stack.env,
        "DATABASE_URL": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{FRESH_DB}",
        "TENANT_DATABASE_URL": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{FRESH_DB}_tenants",
        "REDIS_URL": f"redis://127.0.0.1:{FRESH['redis']}/0",
        "RUN_DIR": str(run_dir),
        "PORT": str(FRESH["api"]),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{FRESH['api']}",
        "CADDY_ADMIN_URL": f"unix://{run_dir}/caddy/caddy-home/admin.sock",
        "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{FRESH['gateway']}",
    }
    redis_server = stack.Service(
        "fresh-redis",
        ["redis-server", "--port", str(FRESH["redis"]), "--save", "", "--appendonly", "no"],
        env,
        tmp_path,
    )
    caddy_env = {
        **env,
        "GATEWAY_PORT": str(FRESH["gateway"]),
        "RUN_DIR": str(run_dir / "caddy"),
        "CADDY_START_TIMEOUT": "60",  # a loaded machine; the session's Caddy is already up
    }
    try:
        redis_server.start()
        stack.run_script(["scripts/caddy.sh", "start"], caddy_env)
        yield env
    finally:
        redis_server.stop()
        from app.providers.container_local import stop_all_agents

        stop_all_agents(run_dir)
        stack.run_script(["scripts/caddy.sh", "stop"], caddy_env)
        _drop_databases(FRESH_DB, f"{FRESH_DB}_tenants")


def _start(fresh: dict[str, str], tmp_path: Path) -> list[stack.Service]:
    api = stack.api_server(fresh, tmp_path, FRESH["api"], name="fresh-api")
    worker = stack.celery_worker(fresh, tmp_path, "fresh-worker", concurrency=2)
    return [api.start(), worker.start()]


def _latest_job(department_id: str) -> tuple[str, str | None]:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=FRESH_DB)
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT j.state, j.kind FROM provisioning_jobs j JOIN departments d"
            " ON d.id = j.department_pk WHERE d.department_id = %s ORDER BY j.created_at DESC",
            (department_id,),
        )
        state, kind = cur.fetchone()
    conn.close()
    return state, kind


def _tenant_rows(dbname: str, department_id: str) -> list[str]:
    role = f"{department_id}_role"
    conn = psycopg2.connect(host="127.0.0.1", user=role, dbname=dbname)
    with conn, conn.cursor() as cur:
        cur.execute(f'SELECT caller FROM "{department_id}_tenant".conversations')  # noqa: S608
        rows = [row[0] for row in cur.fetchall()]
    conn.close()
    return rows


def test_a_department_is_restored_from_backups_on_a_fresh_stack(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    app: Flask,
    fresh_stack: dict[str, str],
    tmp_path: Path,
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    assert wait_for_job(submit(client, admin_headers, payload))["status"] == "completed"
    conn = psycopg2.connect(
        host="127.0.0.1", user=f"{department_id}_role", dbname=f"{TEST_DB}_tenants"
    )
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO conversations (caller) VALUES ('before the backup')")
    conn.close()
    backups = tmp_path / "backups"
    backups.mkdir()
    _backup(backups, f"{department_id}_role")

    # The old stack loses the department entirely: schema, role, agent, route, workflows.
    gone = client.delete(f"/api/deprovision/{department_id}", headers=admin_headers)
    assert gone.status_code == 202, gone.get_json()
    assert wait_for_job(str(gone.get_json()["provisioningId"]))["status"] == "completed"
    assert not leftovers(live_stack, department_id)

    _restore(backups)
    services = _start(fresh_stack, tmp_path)
    try:
        stack.wait_http(f"http://127.0.0.1:{FRESH['api']}/openapi.json")
        repair = keys.flask(fresh_stack, "provisioning", "repair", department_id)
        assert repair.returncode == 0, repair.stdout + repair.stderr
        deadline = time.monotonic() + 120
        while _latest_job(department_id)[0] not in ("COMPLETED", "FAILED"):
            assert time.monotonic() < deadline, "repair did not finish"
            time.sleep(0.5)
        assert _latest_job(department_id) == ("COMPLETED", "repair")
        token = make_token(app)
        health = requests.get(
            f"http://127.0.0.1:{FRESH['api']}/api/departments/{department_id}/health",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()
        assert health["healthy"], health
        served = requests.get(
            f"http://127.0.0.1:{FRESH['gateway']}/departments/{department_id}/", timeout=10
        )
        assert served.status_code == 200 and served.json()["departmentId"] == department_id
        assert _tenant_rows(f"{FRESH_DB}_tenants", department_id) == ["before the backup"]
    finally:
        for service in services:
            service.stop()
