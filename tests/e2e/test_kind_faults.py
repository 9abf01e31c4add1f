"""A worker SIGKILLed mid-step of an update, a repair or a deprovisioning job.

The sweeper must resume each kind of job from the step that was cut short, so
the job ends COMPLETED with every step it planned done, and the real systems
(PostgreSQL, OAuth clients, the agent, n8n, Caddy) show the job's effect.
Each kind gets one department, reused across its cases, to keep the run short.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from app.domain import saga
from tests.conftest import TEST_DB, Stack, department_payload, make_token
from tests.e2e.conftest import leftovers, listed_ids, submit, wait_for_job, wait_for_status
from tests.e2e.test_faults import (
    JOB_TIMEOUT,
    active_oauth_clients,
    agent_instances,
    step_view,
    wait_for_step_status,
)
from tests.support import probes
from tests.support.caddy_admin import caddy_admin

# Two configurations that differ in every field a step renders, so an update
# between them plans all seven steps.
CONFIGS: tuple[dict[str, Any], ...] = (
    {
        "workflows": ["email", "database"],
        "dataRetention": "90d",
        "enabledTools": ["gmail", "database_query"],
    },
    {
        "workflows": ["email", "notifications"],
        "dataRetention": "30d",
        "enabledTools": ["gmail", "web_search"],
    },
)


@pytest.fixture(scope="module")
def headers(app: Flask) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(app)}"}


def _provision(app: Flask, headers: dict[str, str]) -> str:
    payload = department_payload(**CONFIGS[0])
    view = wait_for_job(submit(app.test_client(), headers, payload))
    assert view["status"] == "completed", view
    return str(payload["departmentId"])


def _deprovision(app: Flask, headers: dict[str, str], department_id: str) -> None:
    """Frees the agent process (2 cores here) once the module is done with it."""
    response = app.test_client().delete(f"/api/deprovision/{department_id}", headers=headers)
    if response.status_code == 202:
        wait_for_job(str(response.get_json()["provisioningId"]), timeout=JOB_TIMEOUT)


@pytest.fixture(scope="module")
def updated_department(live_stack: Stack, app: Flask, headers: dict[str, str]) -> Iterator[str]:
    department_id = _provision(app, headers)
    yield department_id
    _deprovision(app, headers, department_id)


@pytest.fixture(scope="module")
def repaired_department(live_stack: Stack, app: Flask, headers: dict[str, str]) -> Iterator[str]:
    department_id = _provision(app, headers)
    yield department_id
    _deprovision(app, headers, department_id)


# --- what the real systems show ----------------------------------------------------


def _retention(department_id: str) -> str | None:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=f"{TEST_DB}_tenants")
    try:
        with conn.cursor() as cur:
            cur.execute(
                f'SELECT value FROM "{department_id.replace("-", "_")}_tenant".tenant_settings '  # noqa: S608 - test id
                "WHERE key = 'data_retention'"
            )
            row = cur.fetchone()
            return str(row[0]) if row else None
    finally:
        conn.close()


def _client_scopes(department_id: str) -> list[str]:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT scopes FROM oauth_clients WHERE department_id = %s AND revoked_at IS NULL",
                (department_id,),
            )
            row = cur.fetchone()
            return sorted(row[0]) if row else []
    finally:
        conn.close()


def assert_runs_config(
    live_stack: Stack,
    client: FlaskClient,
    headers: dict[str, str],
    department_id: str,
    config: dict[str, Any],
) -> None:
    """Every resource exists once, checks out, and renders ``config``."""
    env = live_stack.env
    health = client.get(f"/api/departments/{department_id}/health", headers=headers).get_json()
    assert health["healthy"], health
    agent = requests.get(
        f"{env['GATEWAY_PUBLIC_URL']}/departments/{department_id}/", timeout=10
    ).json()
    assert agent["tools"] == config["enabledTools"]
    assert _client_scopes(department_id) == sorted(f"tools:{t}" for t in config["enabledTools"])
    assert _retention(department_id) == config["dataRetention"]
    workflows = probes.n8n_workflows(env["N8N_URL"], env["N8N_API_KEY"], department_id)
    assert sorted(w["name"] for w in workflows) == sorted(
        f"{department_id}:{w}" for w in config["workflows"]
    )
    assert all(w["active"] for w in workflows)
    found = leftovers(live_stack, department_id)
    assert agent_instances(found.get("agent_pids", [])) == 1, found
    assert found.get("gateway_routes") == 1, found
    assert active_oauth_clients(department_id) == 1


def assert_every_planned_step_done(view: dict[str, Any], killed: str) -> None:
    assert view["status"] == "completed", view
    for record in view["steps"]:
        assert (record["name"], record["status"]) == (record["name"], "completed"), view
        assert record["action"] == "create", record
    assert step_view(view, killed)["attempts"] == 2
    assert any("sweeper: job stalled" in line for line in view["logs"])


# --- update ---------------------------------------------------------------------------


@pytest.mark.parametrize("step", saga.SAGA, ids=[s.name for s in saga.SAGA])
def test_worker_sigkilled_during_each_step_of_an_update_job(
    step: saga.SagaStep,
    live_stack: Stack,
    client: FlaskClient,
    headers: dict[str, str],
    updated_department: str,
    faults: Any,
) -> None:
    department_id = updated_department
    current = client.get(f"/api/departments/{department_id}/history", headers=headers)
    latest = current.get_json()["versions"][0]["config"]
    target = CONFIGS[1] if latest["workflows"] == CONFIGS[0]["workflows"] else CONFIGS[0]
    faults.arm(department_id, f"{step.provider}.create", mode="delay", seconds=8, times=1)

    response = client.patch(f"/api/departments/{department_id}", headers=headers, json=target)
    assert response.status_code == 202, response.get_json()
    job = str(response.get_json()["provisioningId"])
    wait_for_status(job, step.state.lower())
    live_stack.restart_worker(crash=True)
    view = wait_for_job(job, timeout=JOB_TIMEOUT)

    assert [s["name"] for s in view["steps"]] == list(saga.STEP_NAMES)
    assert_every_planned_step_done(view, step.name)
    assert_runs_config(live_stack, client, headers, department_id, target)


# --- repair ---------------------------------------------------------------------------


def _break_everything(live_stack: Stack, department_id: str) -> None:
    """Drift in every component, so that a repair plans every step."""
    env = live_stack.env
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=f"{TEST_DB}_tenants")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{department_id.replace("-", "_")}_tenant" CASCADE')
    conn.close()
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE oauth_clients SET revoked_at = now() WHERE department_id = %s",
            (department_id,),
        )
    conn.close()
    for pid in probes.agent_pids(department_id):
        os.kill(pid, signal.SIGKILL)
    for workflow in probes.n8n_workflows(env["N8N_URL"], env["N8N_API_KEY"], department_id):
        requests.post(
            f"{env['N8N_URL']}/api/v1/workflows/{workflow['id']}/deactivate",
            headers={"X-N8N-API-KEY": env["N8N_API_KEY"]},
            timeout=10,
        ).raise_for_status()
    # A route already gone (a case before this one failed) is drift enough.
    caddy_admin(env["CADDY_ADMIN_URL"], "DELETE", f"/id/dept-{department_id}")


@pytest.mark.parametrize("step", saga.SAGA, ids=[s.name for s in saga.SAGA])
def test_worker_sigkilled_during_each_step_of_a_repair_job(
    step: saga.SagaStep,
    live_stack: Stack,
    client: FlaskClient,
    headers: dict[str, str],
    repaired_department: str,
    faults: Any,
) -> None:
    department_id = repaired_department
    _break_everything(live_stack, department_id)
    faults.arm(department_id, f"{step.provider}.create", mode="delay", seconds=8, times=1)

    response = client.post(f"/api/departments/{department_id}/repair", headers=headers)
    assert response.status_code == 202, response.get_json()
    job = str(response.get_json()["provisioningId"])
    wait_for_status(job, step.state.lower())
    live_stack.restart_worker(crash=True)
    view = wait_for_job(job, timeout=JOB_TIMEOUT)

    assert [s["name"] for s in view["steps"]] == list(saga.STEP_NAMES)
    assert_every_planned_step_done(view, step.name)
    assert_runs_config(live_stack, client, headers, department_id, CONFIGS[0])


# --- deprovision ----------------------------------------------------------------------


@pytest.mark.parametrize("step", saga.RESOURCE_STEPS, ids=[s.name for s in saga.RESOURCE_STEPS])
def test_worker_sigkilled_during_each_removal_of_a_deprovisioning_job(
    step: saga.SagaStep,
    live_stack: Stack,
    client: FlaskClient,
    headers: dict[str, str],
    app: Flask,
    faults: Any,
) -> None:
    department_id = _provision(app, headers)
    faults.arm(department_id, f"{step.provider}.delete", mode="delay", seconds=8, times=1)

    response = client.delete(f"/api/deprovision/{department_id}", headers=headers)
    assert response.status_code == 202, response.get_json()
    job = str(response.get_json()["provisioningId"])
    wait_for_step_status(job, step.name, "in_progress")
    live_stack.restart_worker(crash=True)
    view = wait_for_job(job, timeout=JOB_TIMEOUT)

    assert view["status"] == "completed", view
    assert [s["name"] for s in view["steps"]] == [s.name for s in reversed(saga.RESOURCE_STEPS)]
    for record in view["steps"]:
        assert (record["name"], record["status"], record["action"]) == (
            record["name"],
            "completed",
            "delete",
        )
    assert step_view(view, step.name)["attempts"] == 2
    assert leftovers(live_stack, department_id) == {}
    assert department_id in listed_ids(client, headers, "status=DEPROVISIONED")
