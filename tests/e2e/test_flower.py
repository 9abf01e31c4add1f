"""Flower, started as `make up` starts it (with credentials), shows a job's tasks by
name, with ids only."""

from __future__ import annotations

import ast
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from tests.conftest import SLOT, TEST_DB, Stack, department_payload
from tests.e2e.conftest import submit, wait_for_job
from tests.support import stack
from tests.support.observability import configured_secrets, department_secrets

FLOWER_PORT = 25555 + 10 * SLOT
FLOWER = f"http://127.0.0.1:{FLOWER_PORT}"
# Flower asks for credentials everywhere (flower_app.py); `make env` generates them.
FLOWER_AUTH = ("admin", f"flower-test-{uuid.uuid4().hex}")
STEPS = (
    "validate_config",
    "create_database",
    "create_oauth",
    "deploy_container",
    "deploy_workflows",
    "configure_gateway",
    "validate_deployment",
)
Tasks = dict[str, dict[str, Any]]


def flower_tasks() -> Tasks:
    response = requests.get(
        f"{FLOWER}/api/tasks", params={"limit": 5000}, auth=FLOWER_AUTH, timeout=10
    )
    response.raise_for_status()
    tasks: Tasks = response.json()
    return tasks


def wait_for_tasks(holds: Callable[[Tasks], bool], timeout: float = 30) -> Tasks:
    deadline = time.monotonic() + timeout
    while True:
        tasks = flower_tasks()
        if holds(tasks) or time.monotonic() > deadline:
            return tasks
        time.sleep(0.5)


@pytest.fixture(scope="module")
def flower(live_stack: Stack) -> Iterator[stack.Service]:
    env = {**live_stack.env, "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH)}
    command = [
        str(stack.VENV_BIN / "celery"),
        "-A",
        "flower_app",
        "flower",
        "--address=127.0.0.1",
        f"--port={FLOWER_PORT}",
    ]
    service = stack.Service(f"flower{SLOT}", command, env, live_stack.log_dir).start()
    stack.wait_http(f"{FLOWER}/healthcheck")
    # Flower only knows the task events it receives live: beat sends a sweep every
    # second, so seeing one proves the event receiver is up before our job runs.
    seen = wait_for_tasks(
        lambda tasks: any(t["name"] == "provisioning.sweep" for t in tasks.values())
    )
    assert seen, service.tail()
    yield service
    service.stop()


def tasks_of(tasks: Tasks, job_id: str) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in tasks.values() if job_id in (t.get("args") or "")}


def assert_ids_only(task: dict[str, Any], job_id: str) -> None:
    """Arguments are exactly (job id, generation): nothing else to leak."""
    args = ast.literal_eval(task["args"])
    assert isinstance(args, tuple | list) and len(args) == 2, task["args"]
    assert uuid.UUID(args[0]) == uuid.UUID(job_id) and isinstance(args[1], int)
    assert ast.literal_eval(task["kwargs"]) == {}


def test_flower_lists_the_step_tasks_by_name_with_ids_only(
    flower: stack.Service, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    job_id = submit(client, admin_headers, department_payload())
    assert wait_for_job(job_id)["status"] == "completed"
    wanted = {f"provisioning.step.{step}" for step in STEPS}

    tasks = wait_for_tasks(
        lambda all_tasks: (
            wanted <= {n for n, t in tasks_of(all_tasks, job_id).items() if t["state"] == "SUCCESS"}
        )
    )

    mine = tasks_of(tasks, job_id)
    assert set(mine) == wanted, sorted(mine)
    for task in mine.values():
        assert task["state"] == "SUCCESS"
        assert_ids_only(task, job_id)
    shown = json.dumps(mine)
    secrets = department_secrets(TEST_DB) + configured_secrets()
    assert not [s[:4] for s in secrets if s in shown]


def test_flower_lists_the_compensation_tasks_of_a_rollback(
    flower: stack.Service, client: FlaskClient, admin_headers: dict[str, str], faults: Any
) -> None:
    payload = department_payload()
    faults.arm(payload["departmentId"], "gateway.create", mode="fail")
    job_id = submit(client, admin_headers, payload)
    assert wait_for_job(job_id)["status"] == "failed"
    wanted = {
        "provisioning.compensate.drop_database",
        "provisioning.compensate.delete_oauth",
        "provisioning.compensate.delete_container",
        "provisioning.compensate.delete_workflows",
        "provisioning.rollback",
        "provisioning.finish",
    }

    mine = tasks_of(wait_for_tasks(lambda t: wanted <= set(tasks_of(t, job_id))), job_id)

    assert wanted <= set(mine), sorted(mine)
    assert mine["provisioning.step.configure_gateway"]["state"] == "FAILURE"
    for task in mine.values():
        assert_ids_only(task, job_id)
