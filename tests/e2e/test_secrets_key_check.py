"""A wrong SECRETS_KEY is caught once, clearly: at start (refused in production),
by drift and repair (no job that must fail), and by a step (fails at once)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask.testing import FlaskClient

from tests.conftest import SLOT, TEST_DB, Stack, department_payload
from tests.e2e.conftest import listed_ids, submit, wait_for_job, wait_for_status
from tests.support import keys, stack
from tests.support.caddy_admin import caddy_admin

PHRASE = "SECRETS_KEY does not decrypt"
SLOT_PORT = 30000 + 1000 * SLOT + 200  # in this slot's range (see tests/conftest.py SLOT)


@pytest.fixture()
def provisioned(client: FlaskClient, admin_headers: dict[str, str]) -> str:
    payload = department_payload()
    view = wait_for_job(submit(client, admin_headers, payload))
    assert view["status"] == "completed", view
    return str(payload["departmentId"])


def _production(env: dict[str, str], key: str) -> dict[str, str]:
    return {**env, "APP_ENV": "production", "FAULT_INJECTION_ENABLED": "0", "SECRETS_KEY": key}


def test_cli_names_a_wrong_key_once_and_refuses_it_in_production(
    live_stack: Stack, provisioned: str
) -> None:
    wrong = Fernet.generate_key().decode()

    lenient = keys.flask({**live_stack.env, "SECRETS_KEY": wrong}, "provisioning", "list")
    assert lenient.returncode == 0, lenient.stderr
    assert len(keys.lines_with(lenient.stderr, PHRASE)) == 1, lenient.stderr
    assert provisioned in lenient.stdout

    refused = keys.flask(_production(live_stack.env, wrong), "provisioning", "list")
    assert refused.returncode != 0
    assert keys.lines_with(refused.stderr, f"refusing to run: {PHRASE}"), refused.stderr
    assert provisioned not in refused.stdout

    # The tool that helps is still there in production, and says the same.
    check = keys.flask(_production(live_stack.env, wrong), "secrets", "check")
    assert check.returncode != 0 and keys.lines_with(check.stderr, PHRASE), check.stderr

    right = keys.flask(
        _production(live_stack.env, live_stack.env["SECRETS_KEY"]), "secrets", "check"
    )
    assert right.returncode == 0, right.stderr
    assert " 0 do not" in right.stdout and PHRASE not in right.stderr


def test_api_and_worker_refuse_to_start_in_production_with_a_wrong_key(
    live_stack: Stack, provisioned: str, tmp_path: Path
) -> None:
    env = _production(live_stack.env, Fernet.generate_key().decode())
    api = stack.api_server(env, tmp_path, SLOT_PORT + 1, name="api-wrong-key")
    worker = stack.celery_worker(env, tmp_path, "worker-wrong-key", concurrency=1)
    try:
        for service in (api.start(), worker.start()):
            assert service.process is not None
            assert service.process.wait(timeout=60) != 0, service.tail()
            assert f"Configuration error: {PHRASE}" in service.tail(), service.tail()
    finally:
        api.stop()
        worker.stop()


def test_drift_and_repair_start_no_job_that_must_fail(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str], provisioned: str
) -> None:
    department_id = provisioned
    caddy_admin(
        live_stack.env["CADDY_ADMIN_URL"], "DELETE", f"/id/dept-{department_id}"
    ).raise_for_status()
    with keys.under_foreign_key(TEST_DB, department_id, live_stack.env["SECRETS_KEY"]):
        for _ in range(2):  # `make up` twice: still nothing piles up
            drift = keys.flask(live_stack.env, "provisioning", "drift", "--repair", "--wait")
            assert drift.returncode != 0
            mine = keys.lines_with(drift.stdout, f"{department_id}: DEGRADED")
            assert len(mine) == 1 and "not repaired" in mine[0] and "SECRETS_KEY" in mine[0], (
                drift.stdout
            )
        repair = client.post(f"/api/departments/{department_id}/repair", headers=admin_headers)
        assert repair.status_code == 409, repair.get_json()
        assert "cannot be decrypted with SECRETS_KEY" in repair.get_json()["message"]
        health = client.get(f"/api/departments/{department_id}/health", headers=admin_headers)
        details = {c["name"]: c["detail"] for c in health.get_json()["checks"]}
        assert any("SECRETS_KEY" in d for d in details.values()), details
        assert department_id in listed_ids(client, admin_headers, "status=DEGRADED")
        jobs = _jobs_of(department_id)
        assert jobs == ["provision"], jobs
    # With the key back, the same repair goes through.
    drift = keys.flask(live_stack.env, "provisioning", "drift", "--repair", "--wait")
    mine = keys.lines_with(drift.stdout, f"{department_id}: DEGRADED: gateway_route")
    assert len(mine) == 1 and "(repair job" in mine[0], drift.stdout
    assert drift.returncode == 0, drift.stdout


def _jobs_of(department_id: str) -> list[str]:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT j.kind FROM provisioning_jobs j JOIN departments d ON d.id = j.department_pk"
            " WHERE d.department_id = %s ORDER BY j.created_at",
            (department_id,),
        )
        kinds = [row[0] for row in cur.fetchall()]
    conn.close()
    return kinds


def _when_running(job_id: str, step: str) -> None:
    from app import config
    from app.domain.services.queries import job_view

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        view = job_view(uuid.UUID(job_id), config.current())
        assert view is not None
        if any(s["name"] == step and s["status"] == "in_progress" for s in view["steps"]):
            return
        time.sleep(0.05)
    raise AssertionError(f"{step} never ran: {view}")


@pytest.mark.parametrize(
    ("delayed", "delayed_step", "secret", "failing_step"),
    [
        ("oauth.create", "create_oauth", "database_password", "deploy_container"),
        # The last step re-checks until healthy; a wrong key must not be waited out.
        ("gateway.create", "configure_gateway", "oauth_client_secret", "validate_deployment"),
    ],
)
def test_a_step_that_cannot_decrypt_fails_at_once_with_the_reason(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: Any,
    delayed: str,
    delayed_step: str,
    secret: str,
    failing_step: str,
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    faults.arm(department_id, delayed, mode="delay", seconds=3)
    job_id = submit(client, admin_headers, payload)
    _when_running(job_id, delayed_step)
    with keys.under_foreign_key(
        TEST_DB, department_id, live_stack.env["SECRETS_KEY"], names=(secret,)
    ):
        view = wait_for_job(job_id)
    assert view["status"] == "failed", view
    failed = next(s for s in view["steps"] if s["name"] == failing_step)
    assert failed["attempts"] == 1, failed
    assert view["error"]["step"] == failing_step
    assert "cannot be decrypted with SECRETS_KEY" in view["error"]["message"], view["error"]
    wait_for_status(job_id, "failed")
