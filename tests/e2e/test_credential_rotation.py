"""Credential rotation per department, with traffic through the gateway all along:
new database password and OAuth secret handed to the running agent, the old
ones revoked after it is healthy on the new ones, not one request failed."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import timedelta
from typing import Any

import psycopg2
import requests
from cryptography.fernet import Fernet, MultiFernet
from flask.testing import FlaskClient

from app.domain.services.credentials import due_for_rotation
from tests.conftest import TEST_DB, Stack, department_payload
from tests.e2e.conftest import submit, wait_for_job
from tests.support import keys, probes


def _fp(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def _secrets(env: dict[str, str], department_id: str) -> dict[str, str]:
    ring = MultiFernet([Fernet(k.encode()) for k in env["SECRETS_KEY"].split(",")])
    stored = keys.ciphertexts(TEST_DB, department_id)
    return {name: ring.decrypt(ct).decode() for name, ct in stored.items()}


def _verifier(department_id: str) -> str:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (f"{department_id}_role",)
        )
        (verifier,) = cur.fetchone()
    conn.close()
    return str(verifier)


class Traffic(threading.Thread):
    """Clients calling the department through the gateway, as users do."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.results: list[tuple[str, Any]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        while not self.stopping.is_set():
            for path in ("/health", "/"):
                try:
                    response = session.get(self.base + path, timeout=10)
                    ok = response.status_code == 200 and (
                        path == "/" or response.json().get("status") == "ok"
                    )
                    self.results.append((path, response.status_code if ok else response.text))
                except requests.RequestException as exc:
                    self.results.append((path, repr(exc)))

    def failures(self) -> list[tuple[str, Any]]:
        return [r for r in self.results if r[1] != 200]


def _token_status(env: dict[str, str], department_id: str, secret: str) -> int:
    return requests.post(
        f"{env['PUBLIC_BASE_URL']}/oauth/token",
        auth=(f"dept-{department_id}", secret),
        data={"grant_type": "client_credentials"},
        timeout=10,
    ).status_code


def test_rotation_under_traffic_hands_over_then_revokes(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    assert wait_for_job(submit(client, admin_headers, payload))["status"] == "completed"
    env = live_stack.env
    before, verifier, pids = (
        _secrets(env, department_id),
        _verifier(department_id),
        probes.agent_pids(department_id),
    )
    gateway = f"{env['GATEWAY_PUBLIC_URL']}/departments/{department_id}"

    traffic = Traffic(gateway)
    traffic.start()
    time.sleep(1)
    response = client.post(
        f"/api/departments/{department_id}/rotate-credentials", headers=admin_headers
    )
    assert response.status_code == 202, response.get_json()
    view = wait_for_job(str(response.get_json()["provisioningId"]))
    time.sleep(1)
    traffic.stopping.set()
    traffic.join(timeout=30)

    assert view["status"] == "completed", view
    assert len(traffic.results) > 20 and not traffic.failures(), traffic.failures()[:5]
    after = _secrets(env, department_id)
    assert set(after) == {"database_password", "oauth_client_secret"}  # nothing staged left
    assert after["database_password"] != before["database_password"]
    assert after["oauth_client_secret"] != before["oauth_client_secret"]
    assert _verifier(department_id) != verifier  # the role's password really changed
    assert _token_status(env, department_id, before["oauth_client_secret"]) == 401
    assert _token_status(env, department_id, after["oauth_client_secret"]) == 200
    # The running agent got them: same process, reporting the new credentials only.
    assert probes.agent_pids(department_id) == pids
    reported = requests.get(gateway + "/health", timeout=10).json()["credentials"]
    assert reported == {
        "databaseHeld": [_fp(after["database_password"])],
        "oauth": _fp(after["oauth_client_secret"]),
    }
    history = client.get(f"/api/departments/{department_id}/history", headers=admin_headers)
    versions = history.get_json()["versions"]
    rotated = [v for v in versions if "credentials" in v["diff"]]
    assert len(versions) == 2 and len(rotated) == 1, versions
    assert set(rotated[0]["diff"]) == {"credentials"}  # the configuration itself is unchanged
    audit = client.get(
        f"/api/audit?departmentId={department_id}&action=rotate_credentials", headers=admin_headers
    ).get_json()
    assert audit["total"] >= 1, audit

    # The CLI verb does the same, and a health check afterwards is green.
    cli = keys.flask(
        env, "provisioning", "rotate-credentials", department_id, "--wait", timeout=180
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert _secrets(env, department_id)["oauth_client_secret"] != after["oauth_client_secret"]
    assert probes.agent_pids(department_id) == pids
    health = client.get(f"/api/departments/{department_id}/health", headers=admin_headers)
    assert health.get_json()["healthy"], health.get_json()


def test_scheduled_rotation_starts_only_for_departments_that_are_due(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    from app.config import load_settings
    from app.domain.services.credentials import rotate_due

    payload = department_payload()
    department_id = payload["departmentId"]
    assert wait_for_job(submit(client, admin_headers, payload))["status"] == "completed"
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE departments SET created_at = now() - interval '400 days'"
            " WHERE department_id = %s",
            (department_id,),
        )
    conn.close()
    before = _secrets(live_stack.env, department_id)

    started = rotate_due(load_settings({"CREDENTIAL_ROTATION_DAYS": 365}))

    assert len(started) == 1, started  # every other department was created today
    view = wait_for_job(started[0])
    assert view["status"] == "completed" and view["departmentId"] == department_id, view
    assert _secrets(live_stack.env, department_id) != before
    assert rotate_due(load_settings({"CREDENTIAL_ROTATION_DAYS": 365})) == []  # now fresh


def test_the_schedule_picks_what_is_older_than_the_interval() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 3, tzinfo=UTC)
    last = {
        "a": now - timedelta(days=91),
        "b": now - timedelta(days=89),
        "c": now - timedelta(days=90),
    }
    assert due_for_rotation(last, now, timedelta(days=90)) == ["a", "c"]
