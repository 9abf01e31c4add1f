"""SECRETS_KEY rotation on the running stack: new key first, rotate while jobs
run, drop the old key, and everything still works."""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from flask.testing import FlaskClient

from tests.conftest import API_PORT, TEST_DB, Stack, department_payload
from tests.e2e.conftest import submit, wait_for_job
from tests.support import keys, stack

COUNTS = re.compile(r"rotated (\d+), already current (\d+), undecryptable (\d+) \(of (\d+)\)")


def _restart_with_key(live_stack: Stack, key: str) -> None:
    """What an operator does: the same key list everywhere, processes restarted."""
    from app import config
    from app.config import load_settings

    live_stack.stop()
    live_stack.env["SECRETS_KEY"] = key
    os.environ["SECRETS_KEY"] = key
    live_stack.api = stack.api_server(live_stack.env, live_stack.log_dir, API_PORT)
    live_stack.worker = stack.celery_worker(live_stack.env, live_stack.log_dir, "worker-rotated")
    live_stack.beat = stack.celery_beat(live_stack.env, live_stack.log_dir)
    for service in (live_stack.api, live_stack.worker, live_stack.beat):
        service.start()
    stack.wait_http(f"http://127.0.0.1:{API_PORT}/openapi.json")
    config.install(load_settings())


def _rotate(env: dict[str, str]) -> tuple[int, int, int, int]:
    result = keys.flask(env, "secrets", "rotate")
    match = COUNTS.search(result.stdout)
    assert match, result.stdout + result.stderr
    assert result.returncode == (0 if match.group(3) == "0" else 1), result.stderr
    rotated, current, bad, total = (int(g) for g in match.groups())
    return rotated, current, bad, total


def _finished(job_id: str) -> bool:
    from app import config
    from app.domain.services.queries import job_view

    view = job_view(uuid.UUID(job_id), config.current())
    return view is None or bool(view["completedAt"])


def _opens_all(key: str) -> list[bool]:
    fernet = Fernet(key.encode())
    opened = []
    for ciphertext in keys.all_ciphertexts(TEST_DB):
        try:
            fernet.decrypt(ciphertext)
            opened.append(True)
        except InvalidToken:
            opened.append(False)
    return opened


def test_rotation_while_jobs_run_then_the_old_key_is_dropped(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str], faults: Any
) -> None:
    old = live_stack.env["SECRETS_KEY"].split(",")[0]
    before = [submit(client, admin_headers, department_payload()) for _ in range(2)]
    assert all(wait_for_job(job)["status"] == "completed" for job in before)
    new = Fernet.generate_key().decode()

    _restart_with_key(live_stack, f"{new},{old}")
    payloads = [department_payload() for _ in range(4)]
    for payload in payloads:  # held in the container step, which reads both secrets
        faults.arm(payload["departmentId"], "container.create", mode="delay", seconds=8)
    running = [submit(client, admin_headers, payload) for payload in payloads]
    rotated, current, bad, total = _rotate(live_stack.env)
    assert bad == 0 and rotated >= 4 and rotated + current == total, (rotated, current, total)
    assert not any(_finished(job) for job in running), "the rotation did not overlap the jobs"
    views = [wait_for_job(job) for job in running]
    assert [v["status"] for v in views] == ["completed"] * 4, views

    again = _rotate(live_stack.env)  # idempotent: nothing left to do
    assert again[0] == 0 and again[1] == again[3] and again[2] == 0, again
    assert all(_opens_all(new)), "a secret is still under the old key"

    _restart_with_key(live_stack, new)  # the old key is gone for good
    check = keys.flask(live_stack.env, "secrets", "check")
    assert check.returncode == 0 and "SECRETS_KEY does not decrypt" not in check.stderr
    for payload in payloads:
        health = client.get(
            f"/api/departments/{payload['departmentId']}/health", headers=admin_headers
        ).get_json()
        assert health["healthy"], health
    # And jobs after the rotation decrypt what was rotated.
    department_id = payloads[0]["departmentId"]
    patched = client.patch(
        f"/api/departments/{department_id}",
        json={"customConfig": {"greeting": "rotated"}},
        headers=admin_headers,
    )
    assert patched.status_code == 202, patched.get_json()
    assert wait_for_job(str(patched.get_json()["provisioningId"]))["status"] == "completed"


def test_an_interrupted_rotation_is_finished_by_a_rerun(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    current_key = live_stack.env["SECRETS_KEY"]
    payload = department_payload()
    assert wait_for_job(submit(client, admin_headers, payload))["status"] == "completed"
    newer = Fernet.generate_key().decode()
    env = {**live_stack.env, "SECRETS_KEY": f"{newer},{current_key}"}
    stored = keys.ciphertexts(TEST_DB, payload["departmentId"])
    # As if a first run had stopped after this department's first secret.
    first = sorted(stored)[0]
    ring = Fernet(current_key.split(",")[0].encode())
    keys.write_ciphertexts(
        TEST_DB,
        payload["departmentId"],
        {first: Fernet(newer.encode()).encrypt(ring.decrypt(stored[first]))},
    )
    rotated, current, bad, total = _rotate(env)
    assert (bad, current, rotated) == (0, 1, total - 1)
    assert all(_opens_all(newer))
    # Put the session back on the key its stack runs with.
    assert _rotate({**live_stack.env, "SECRETS_KEY": f"{current_key},{newer}"})[2] == 0
    assert all(_opens_all(current_key.split(",")[0]))
