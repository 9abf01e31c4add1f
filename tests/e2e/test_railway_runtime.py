"""The whole stack on the Railway runtime, against the stand-in serving Railway's real
schema, whose deployments really run the agent behind their domain.

The worker (and the API code run in this process) switch to ``CONTAINER_RUNTIME=railway``
for this module only; beat stops sweeping drift meanwhile, so departments of other modules
are never judged by the Railway driver.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from app import config
from app.config import load_settings
from tests.conftest import SLOT, Stack, department_payload
from tests.e2e.conftest import submit, wait_for_job
from tests.support.railway_runtime import AgentProcess, LocalRuntime
from tests.support.railway_standin import RailwayStandIn

TOKEN = "railway-e2e-token-93be"
IMAGE = "ghcr.io/example/agent:1.0.0"
NEW_IMAGE = "ghcr.io/example/agent:1.1.0"
STANDIN_PORT = 30000 + 1000 * SLOT + 600


def _railway_env(standin: RailwayStandIn, image: str) -> dict[str, str]:
    return {
        "CONTAINER_RUNTIME": "railway",
        "RAILWAY_API_URL": standin.url,
        "RAILWAY_API_TOKEN": TOKEN,
        "RAILWAY_PROJECT_ID": standin.project_id,
        "RAILWAY_ENVIRONMENT_ID": standin.environment_id,
        "RAILWAY_IMAGE": image,
        "RAILWAY_POLL_INTERVAL": "0.2",
        "RAILWAY_POLL_MAX_INTERVAL": "1",
        "RAILWAY_DEPLOY_TIMEOUT": "20",
        "DRIFT_CHECK_INTERVAL": "0",
    }


def _switch(stack: Stack, base: dict[str, str], overrides: dict[str, str]) -> None:
    """Worker, beat and this process's settings all on one runtime."""
    for name in _railway_env_names():
        os.environ.pop(name, None)
    os.environ.update({k: v for k, v in base.items() if k in _railway_env_names()})
    os.environ.update(overrides)
    stack.env = {**base, **overrides}
    stack.restart_worker()
    stack.restart_beat()
    config.install(load_settings())


def _railway_env_names() -> set[str]:
    return (
        {"CONTAINER_RUNTIME", "DRIFT_CHECK_INTERVAL"}
        | {k for k in os.environ if k.startswith("RAILWAY_")}
        | {"RAILWAY_API_URL", "RAILWAY_IMAGE"}
    )


@pytest.fixture(scope="module")
def railway(live_stack: Stack, run_dir: Path) -> Iterator[RailwayStandIn]:
    runtime = LocalRuntime(run_dir / "railway", "proj-standin", "env-standin")
    standin = RailwayStandIn(
        token=TOKEN, build_seconds=0.3, deploy_seconds=0.2, runtime=runtime, port=STANDIN_PORT
    )
    standin.start()
    base = dict(live_stack.env)
    try:
        _switch(live_stack, base, _railway_env(standin, IMAGE))
        yield standin
    finally:
        _switch(live_stack, base, {})
        standin.stop()


def _service(railway: RailwayStandIn, department_id: str) -> dict[str, Any]:
    [service] = [s for s in railway.services() if s["name"] == f"dept-{department_id}"]
    return service


def _process(railway: RailwayStandIn, service_id: str) -> tuple[dict[str, str], int]:
    """The live deployment's process: its environment and its address-space limit."""
    instance = railway.instance_of(service_id)
    assert isinstance(instance, AgentProcess), "no live deployment"
    raw = Path(f"/proc/{instance.pid}/environ").read_bytes().split(b"\0")
    environ = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    limits = Path(f"/proc/{instance.pid}/limits").read_text().splitlines()
    [address_space] = [line for line in limits if line.startswith("Max address space")]
    return environ, int(address_space.split()[3])


def _agent(stack: Stack, department_id: str) -> dict[str, Any]:
    gateway = stack.env["GATEWAY_PUBLIC_URL"]
    answer = requests.get(f"{gateway}/departments/{department_id}/", timeout=20)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _provisioned(
    railway: RailwayStandIn, client: FlaskClient, headers: dict[str, str]
) -> tuple[str, str]:
    """A new department, provisioned: its id and its Railway service's id."""
    payload = department_payload()
    assert wait_for_job(submit(client, headers, payload))["status"] == "completed"
    return payload["departmentId"], _service(railway, payload["departmentId"])["id"]


def _health(client: FlaskClient, headers: dict[str, str], department_id: str) -> dict[str, Any]:
    body = client.get(f"/api/departments/{department_id}/health", headers=headers).get_json()
    return {c["name"]: c for c in body["checks"]} | {"_healthy": body["healthy"]}


def test_provision_then_update_brings_new_resources_to_the_running_service(
    railway: RailwayStandIn,
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    payload = department_payload(enabledTools=["gmail"])
    department_id = payload["departmentId"]
    view = wait_for_job(submit(client, admin_headers, payload))
    assert view["status"] == "completed", view
    assert view["progress"]["railway"] == "completed" and view["progress"]["docker"] == "skipped"

    service = _service(railway, department_id)
    environ, address_space = _process(railway, service["id"])
    assert environ["STANDIN_IMAGE"] == IMAGE and environ["AGENT_DEPARTMENT_ID"] == department_id
    assert address_space == 512 * 1024**2  # resources.memory 512Mi as Railway's memoryGB 0.5
    assert _agent(live_stack, department_id)["tools"] == ["gmail"]
    health = _health(client, admin_headers, department_id)
    assert health["_healthy"] and health["container_process"]["healthy"], health

    response = client.patch(
        f"/api/departments/{department_id}",
        headers=admin_headers,
        json={"resources": {"cpu": "1", "memory": "1Gi"}, "enabledTools": ["gmail", "web_search"]},
    )
    assert response.status_code == 202, response.get_json()
    updated = wait_for_job(str(response.get_json()["provisioningId"]))

    assert updated["status"] == "completed", updated
    assert _service(railway, department_id)["limits"] == {"vCPUs": 1.0, "memoryGB": 1.0}
    environ, address_space = _process(railway, service["id"])
    assert address_space == 1024**3 and environ["STANDIN_VCPUS"] == "1.0"
    assert _agent(live_stack, department_id)["tools"] == ["gmail", "web_search"]
    statuses = [d["status"] for d in railway.deployments_of(service["id"])]
    assert statuses[-1] == "SUCCESS" and set(statuses[:-1]) <= {"REMOVING", "REMOVED"}


def test_a_new_image_is_drift_that_repair_rolls_out(
    railway: RailwayStandIn,
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    from app.domain.services import drift

    department_id, service_id = _provisioned(railway, client, admin_headers)
    base = {k: v for k, v in live_stack.env.items() if k not in _railway_env_names()}
    _switch(live_stack, base, _railway_env(railway, NEW_IMAGE))

    health = _health(client, admin_headers, department_id)
    assert not health["_healthy"]
    assert health["container_process"]["detail"] == (
        f"service image is {IMAGE}, wanted {NEW_IMAGE}"
    )
    findings = _sweep(drift, [department_id])
    detail = client.get(f"/api/departments/{department_id}", headers=admin_headers).get_json()
    # Only the image drifted; other checks may fail transiently on a loaded machine (a slow
    # tenant connection), which then only widens the repair.
    assert "container_process" in findings[department_id].failing, detail
    repaired = wait_for_job(str(findings[department_id].repair_job))

    assert repaired["status"] == "completed", repaired
    assert "deploy_container" in [s["name"] for s in repaired["steps"]]
    environ, _ = _process(railway, service_id)
    assert environ["STANDIN_IMAGE"] == NEW_IMAGE
    assert _agent(live_stack, department_id)["departmentId"] == department_id
    assert _health(client, admin_headers, department_id)["_healthy"]


def test_a_sleeping_service_is_reported_not_redeployed_and_deprovision_removes_it(
    railway: RailwayStandIn,
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    from app.domain.services import drift

    department_id, service_id = _provisioned(railway, client, admin_headers)
    deployments = railway.deployments_of(service_id)
    railway.sleep_service(service_id)

    # The container check runs before the gateway's, whose request then wakes the service.
    health = _health(client, admin_headers, department_id)
    railway.sleep_service(service_id)
    findings = _sweep(drift, [department_id])

    assert department_id not in findings  # healthy: no drift, no repair job
    container = health["container_process"]
    assert container["healthy"] and "SLEEPING" in container["detail"], container
    assert railway.deployments_of(service_id)[-1]["id"] == deployments[-1]["id"]
    assert len(railway.deployments_of(service_id)) == len(deployments)
    # The request through the gateway woke it, as Railway's edge does.
    assert _agent(live_stack, department_id)["departmentId"] == department_id
    domain = railway.domain_of(service_id)
    instance = railway.instance_of(service_id)

    response = client.delete(f"/api/deprovision/{department_id}", headers=admin_headers)
    assert response.status_code == 202, response.get_json()
    assert wait_for_job(str(response.get_json()["provisioningId"]))["status"] == "completed"

    assert [s for s in railway.services() if s["id"] == service_id] == []
    assert "serviceDomainDelete" in railway.operations
    host, port = str(domain).split(":")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{host}:{port}/", timeout=5)  # the domain is gone
    assert isinstance(instance, AgentProcess) and not instance.alive()


def _sweep(drift: Any, department_ids: list[str]) -> dict[str, Any]:
    """The drift sweep with repair, over this module's departments only."""
    original = drift.watched_departments
    drift.watched_departments = lambda: [d for d in original() if d in department_ids]
    try:
        return {f.department_id: f for f in drift.detect_drift(config.current(), repair=True)}
    finally:
        drift.watched_departments = original
