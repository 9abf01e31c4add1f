"""The whole saga against the real components: provision, use, deprovision."""

from __future__ import annotations

import requests
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import TEST_DB, Stack, department_payload, make_token
from tests.e2e.conftest import leftovers, listed_ids, submit, wait_for_job
from tests.support import probes

COMPONENTS = ("database", "oauth", "docker", "n8n", "gateway")


def test_provision_then_deprovision_with_every_real_component(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str], app: Flask
) -> None:
    payload = department_payload(workflows=["email", "database", "notifications"])
    department_id = payload["departmentId"]
    response = client.post("/api/provision-department", json=payload, headers=admin_headers)
    assert response.status_code == 202
    body = response.get_json()
    assert response.headers["Location"] == body["statusUrl"]
    assert body["deploymentUrl"].endswith(f"/departments/{department_id}/")

    view = wait_for_job(str(body["provisioningId"]))
    assert view["status"] == "completed", view
    assert view["progress"]["percentage"] == 100
    assert all(view["progress"][c] == "completed" for c in COMPONENTS)
    assert view["progress"]["railway"] == "skipped"

    # Each resource exists in its own system, once.
    env = live_stack.env
    assert probes.tenant_schema_exists(f"{TEST_DB}_tenants", department_id)
    assert probes.tenant_role_exists(department_id)
    assert probes.oauth_client_active(TEST_DB, department_id)
    assert len(probes.agent_pids(department_id)) >= 1
    assert probes.gateway_route_count(env["CADDY_ADMIN_URL"], department_id) == 1
    workflows = probes.n8n_workflows(env["N8N_URL"], env["N8N_API_KEY"], department_id)
    assert sorted(w["name"] for w in workflows) == sorted(
        f"{department_id}:{w}" for w in payload["workflows"]
    )
    assert all(w["active"] for w in workflows)

    # The agent answers through the gateway, and its own health check passes.
    agent = requests.get(body["deploymentUrl"], timeout=10)
    assert agent.status_code == 200 and agent.json()["departmentId"] == department_id
    assert requests.get(body["deploymentUrl"] + "health", timeout=10).status_code == 200

    health = client.get(f"/api/departments/{department_id}/health", headers=admin_headers)
    assert health.status_code == 200
    checks = {c["name"]: c for c in health.get_json()["checks"]}
    assert health.get_json()["healthy"], checks
    assert set(checks) >= {
        "railway_agent",
        "database_connectivity",
        "n8n_workflows",
        "oauth_credentials",
        "gateway_route",
    }

    assert department_id in listed_ids(client, admin_headers, "status=ACTIVE")

    gone = client.delete(f"/api/deprovision/{department_id}", headers=admin_headers)
    assert gone.status_code == 202 and gone.get_json()["status"] == "DEPROVISIONING"
    final = wait_for_job(str(gone.get_json()["provisioningId"]))
    assert final["status"] == "completed", final
    assert leftovers(live_stack, department_id) == {}
    assert department_id in listed_ids(client, admin_headers, "status=DEPROVISIONED")
    assert requests.get(body["deploymentUrl"], timeout=10).status_code == 404


def test_department_token_reads_only_its_own_department(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str], app: Flask
) -> None:
    mine, other = department_payload(), department_payload()
    mine_job = submit(client, admin_headers, mine)
    other_job = submit(client, admin_headers, other)
    token = make_token(app, role="department", department_id=mine["departmentId"])
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/provision-status/{mine_job}", headers=headers).status_code == 200
    assert client.get(f"/api/provision-status/{other_job}", headers=headers).status_code == 403
    assert (
        client.get(f"/api/departments/{other['departmentId']}/health", headers=headers).status_code
        == 403
    )
    listed = client.get("/api/departments", headers=headers).get_json()
    assert [d["departmentId"] for d in listed["departments"]] == [mine["departmentId"]]
    assert (
        client.post(
            "/api/provision-department", json=department_payload(), headers=headers
        ).status_code
        == 403
    )
    assert (
        client.delete(f"/api/deprovision/{mine['departmentId']}", headers=headers).status_code
        == 403
    )
    for job in (mine_job, other_job):
        wait_for_job(job)
