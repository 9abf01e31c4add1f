"""Dry-run, cancel, update, drift and repair, deprovision safety: on the real stack."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import requests
from flask import Flask
from flask.testing import FlaskClient

from app import config
from tests.conftest import TEST_DB, Stack, department_payload
from tests.e2e.conftest import leftovers, listed, listed_ids, submit, wait_for_job, wait_for_status
from tests.support import probes
from tests.support.caddy_admin import caddy_admin


def _provisioned(client: FlaskClient, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    payload = department_payload(**overrides)
    view = wait_for_job(submit(client, headers, payload))
    assert view["status"] == "completed", view
    return payload


def _snapshot(stack: Stack, fresh_id: str) -> dict[str, Any]:
    """Everything a provisioning could touch, in every real system. OAuth tokens
    are counted for the fresh department only: the live stack's drift sweep
    health-checks the departments earlier tests left up, and their agents get
    tokens whenever it does (a CI run saw 202 become 204 across a dry run)."""
    env = stack.env
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    with conn.cursor() as cur:
        counts = {}
        for table in (
            "departments",
            "provisioning_jobs",
            "job_steps",
            "job_logs",
            "oauth_clients",
            "department_secrets",
        ):
            cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed names
            counts[table] = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM oauth_tokens WHERE client_id = %s", (f"dept-{fresh_id}",))
        counts["fresh_department_tokens"] = cur.fetchone()[0]
    conn.close()
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=f"{TEST_DB}_tenants")
    with conn.cursor() as cur:
        cur.execute("SELECT nspname FROM pg_namespace ORDER BY 1")
        schemas = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT rolname FROM pg_roles ORDER BY 1")
        roles = [r[0] for r in cur.fetchall()]
    conn.close()
    workflows = {"data": probes.all_n8n_workflows(env["N8N_URL"], env["N8N_API_KEY"])}
    return {
        "counts": counts,
        "schemas": schemas,
        "roles": roles,
        "caddy": caddy_admin(env["CADDY_ADMIN_URL"], "GET", "/config/").json(),
        "workflows": sorted((w["id"], w["active"]) for w in workflows["data"]),
    }


def test_dry_run_plans_every_step_and_changes_nothing(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    existing = _provisioned(client, admin_headers)
    fresh = department_payload()
    before = _snapshot(live_stack, fresh["departmentId"])

    plan = client.post("/api/provision-department?dryRun=true", json=fresh, headers=admin_headers)
    again = client.post(
        "/api/provision-department?dryRun=true", json=existing, headers=admin_headers
    )

    assert _snapshot(live_stack, fresh["departmentId"]) == before
    assert plan.status_code == 200, plan.get_json()
    body = plan.get_json()
    steps = {s["step"]: s for s in body["steps"]}
    slug = fresh["departmentId"]
    assert list(steps) == [
        "validate_config",
        "create_database",
        "create_oauth",
        "deploy_container",
        "deploy_workflows",
        "configure_gateway",
        "validate_deployment",
    ]
    assert steps["create_database"]["resources"]["schema"] == f"{slug}_tenant"
    assert steps["create_oauth"]["resources"]["clientId"] == f"dept-{slug}"
    assert steps["deploy_workflows"]["resources"]["workflows"] == [
        f"{slug}:{w}" for w in fresh["workflows"]
    ]
    assert steps["configure_gateway"]["resources"]["routeId"] == f"dept-{slug}"
    assert steps["create_database"]["exists"] == {"schema": False, "role": False}
    assert body["wouldConflict"] is None
    existing_steps = {s["step"]: s for s in again.get_json()["steps"]}
    assert existing_steps["create_database"]["exists"] == {"schema": True, "role": True}
    assert existing_steps["create_oauth"]["exists"] == {"client": True}
    assert existing_steps["deploy_container"]["exists"] == {"agent": True}
    assert existing_steps["configure_gateway"]["exists"] == {"route": True}
    assert "409" in again.get_json()["wouldConflict"]
    bad = client.post(
        "/api/provision-department?dryRun=true",
        headers=admin_headers,
        json={**fresh, "region": "mars"},
    )
    assert bad.status_code == 422


def test_cancel_stops_at_a_safe_point_rolls_back_and_ends_cancelled(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: Any,
) -> None:
    payload = department_payload()
    faults.arm(payload["departmentId"], "container.create", mode="delay", seconds=3)
    job = submit(client, admin_headers, payload)
    wait_for_status(job, "deploying_container")

    cancel = client.post(f"/api/provision-status/{job}/cancel", headers=admin_headers)
    assert cancel.status_code == 202
    view = wait_for_job(job)

    assert view["status"] == "cancelled"
    steps = {s["name"]: s["status"] for s in view["steps"]}
    assert steps["deploy_container"] == "rolled_back"  # it finished, then was undone
    assert steps["deploy_workflows"] == "pending"  # never started
    assert "cancelled by ops@example.com" in view["error"]["message"]
    assert leftovers(live_stack, payload["departmentId"]) == {}
    again = client.post(f"/api/provision-status/{job}/cancel", headers=admin_headers)
    assert again.status_code == 409


def test_update_applies_only_the_difference_and_keeps_history(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    payload = _provisioned(client, admin_headers)
    department_id = payload["departmentId"]

    response = client.patch(
        f"/api/departments/{department_id}",
        headers=admin_headers,
        json={"workflows": ["email", "notifications"]},
    )
    assert response.status_code == 202, response.get_json()
    view = wait_for_job(str(response.get_json()["provisioningId"]))

    assert view["status"] == "completed", view
    assert [s["name"] for s in view["steps"]] == [
        "validate_config",
        "deploy_workflows",
        "validate_deployment",
    ]
    names = sorted(
        w["name"]
        for w in probes.n8n_workflows(
            live_stack.env["N8N_URL"], live_stack.env["N8N_API_KEY"], department_id
        )
    )
    assert names == [f"{department_id}:email", f"{department_id}:notifications"]
    history = client.get(
        f"/api/departments/{department_id}/history", headers=admin_headers
    ).get_json()["versions"]
    assert [v["version"] for v in history] == [2, 1]
    assert history[0]["diff"] == {
        "workflows": {"from": ["email", "database"], "to": ["email", "notifications"]}
    }
    assert history[0]["actor"] == "ops@example.com"

    same = client.patch(
        f"/api/departments/{department_id}",
        headers=admin_headers,
        json={"workflows": ["email", "notifications"]},
    )
    assert same.status_code == 200  # nothing changed: no job
    invalid = client.patch(
        f"/api/departments/{department_id}", headers=admin_headers, json={"workflows": ["fax"]}
    )
    assert invalid.status_code == 422


def test_a_failed_update_restores_the_previous_configuration(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: Any,
) -> None:
    payload = _provisioned(client, admin_headers)
    department_id = payload["departmentId"]
    before = client.get(
        f"/api/departments/{department_id}/health", headers=admin_headers
    ).get_json()
    assert before["healthy"]
    faults.arm(department_id, "deployment_check.create", mode="fail")

    response = client.patch(
        f"/api/departments/{department_id}",
        headers=admin_headers,
        json={"resources": {"cpu": "1", "memory": "1Gi"}, "enabledTools": ["gmail"]},
    )
    view = wait_for_job(str(response.get_json()["provisioningId"]))

    assert view["status"] == "failed"
    restored = [s["name"] for s in view["steps"] if s["status"] == "rolled_back"]
    assert restored == ["create_oauth", "deploy_container", "configure_gateway"]
    active = listed(client, admin_headers, "status=ACTIVE")
    row = next(d for d in active if d["departmentId"] == department_id)
    assert row["configVersion"] == 1
    after = client.get(f"/api/departments/{department_id}/health", headers=admin_headers).get_json()
    assert after["healthy"], after
    agent = requests.get(
        f"{live_stack.env['GATEWAY_PUBLIC_URL']}/departments/{department_id}/", timeout=10
    ).json()
    assert agent["tools"] == payload["enabledTools"]  # the previous configuration again


def test_drift_is_detected_and_repair_recreates_only_what_is_missing(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    from app.domain.services.drift import detect_drift

    payload = _provisioned(client, admin_headers)
    department_id = payload["departmentId"]
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=f"{TEST_DB}_tenants")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP SCHEMA "{department_id}_tenant" CASCADE')
    conn.close()
    caddy_admin(
        live_stack.env["CADDY_ADMIN_URL"], "DELETE", f"/id/dept-{department_id}"
    ).raise_for_status()

    findings = {f.department_id: f for f in detect_drift(config.current())}

    assert set(findings[department_id].failing) >= {"database_connectivity", "gateway_route"}
    assert department_id in listed_ids(client, admin_headers, "status=DEGRADED")
    repair = client.post(f"/api/departments/{department_id}/repair", headers=admin_headers)
    assert repair.status_code == 202, repair.get_json()
    view = wait_for_job(str(repair.get_json()["provisioningId"]))
    assert view["status"] == "completed", view
    ran = [s["name"] for s in view["steps"]]
    assert "create_oauth" not in ran and "deploy_workflows" not in ran
    assert {"create_database", "configure_gateway"} <= set(ran)
    assert probes.tenant_schema_exists(f"{TEST_DB}_tenants", department_id)
    health = client.get(f"/api/departments/{department_id}/health", headers=admin_headers)
    assert health.get_json()["healthy"]
    healthy = client.post(f"/api/departments/{department_id}/repair", headers=admin_headers)
    assert healthy.status_code == 409


@contextmanager
def _settings(**changes: Any) -> Iterator[None]:
    original = config.current()
    config.install(original.model_copy(update=changes))
    try:
        yield
    finally:
        config.install(original)


def test_deprovision_honours_protection_and_confirmation(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    app: Flask,
) -> None:
    payload = _provisioned(client, admin_headers)
    department_id = payload["departmentId"]
    protect = client.patch(
        f"/api/departments/{department_id}",
        headers=admin_headers,
        json={"deletionProtection": True},
    )
    assert protect.status_code == 200 and protect.get_json()["deletionProtection"] is True
    refused = client.delete(f"/api/deprovision/{department_id}", headers=admin_headers)
    assert refused.status_code == 409 and "deletion protection" in refused.get_json()["message"]
    client.patch(
        f"/api/departments/{department_id}",
        headers=admin_headers,
        json={"deletionProtection": False},
    )

    with _settings(DEPROVISION_REQUIRE_CONFIRM=True):
        unconfirmed = client.delete(f"/api/deprovision/{department_id}", headers=admin_headers)
        wrong = client.delete(
            f"/api/deprovision/{department_id}?confirm=other", headers=admin_headers
        )
        confirmed = client.delete(
            f"/api/deprovision/{department_id}",
            headers=admin_headers,
            json={"confirm": department_id},
        )
    assert unconfirmed.status_code == 422 and wrong.status_code == 422
    assert confirmed.status_code == 202
    assert wait_for_job(str(confirmed.get_json()["provisioningId"]))["status"] == "completed"
    # Every page: earlier tests leave far more departments than one page holds.
    assert department_id not in listed_ids(client, admin_headers)
    assert department_id in listed_ids(client, admin_headers, "includeDeprovisioned=true")
    history = client.get(f"/api/departments/{department_id}/history", headers=admin_headers)
    assert history.status_code == 200 and history.get_json()["versions"]


def test_auto_repair_brings_back_a_killed_agent_and_a_deactivated_workflow(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    app: Flask,
) -> None:
    payload = _provisioned(client, admin_headers)
    department_id = payload["departmentId"]
    probes.stop_agent(department_id)
    env = live_stack.env
    workflow = probes.n8n_workflows(env["N8N_URL"], env["N8N_API_KEY"], department_id)[0]
    requests.post(
        f"{env['N8N_URL']}/api/v1/workflows/{workflow['id']}/deactivate",
        headers={"X-N8N-API-KEY": env["N8N_API_KEY"]},
        timeout=10,
    ).raise_for_status()

    with _settings(AUTO_REPAIR=True):
        result = app.test_cli_runner().invoke(args=["provisioning", "drift"])

    assert result.exit_code == 7, result.output  # drift found (repair started, not awaited)
    line = next(x for x in result.output.splitlines() if x.startswith(department_id))
    assert "railway_agent" in line and "n8n_workflows" in line and "repair job" in line
    job = line.split("repair job ")[1].rstrip(")")
    assert wait_for_job(job)["status"] == "completed"
    assert client.get(f"/api/departments/{department_id}/health", headers=admin_headers).get_json()[
        "healthy"
    ]
    assert all(
        w["active"] for w in probes.n8n_workflows(env["N8N_URL"], env["N8N_API_KEY"], department_id)
    )


def test_drift_repair_flag_restores_what_a_restart_lost(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    app: Flask,
) -> None:
    """What `make up` runs after the stack was down: routes and agents come back."""
    payload = _provisioned(client, admin_headers)
    department_id = payload["departmentId"]
    caddy_admin(
        live_stack.env["CADDY_ADMIN_URL"], "DELETE", f"/id/dept-{department_id}"
    ).raise_for_status()

    result = app.test_cli_runner().invoke(args=["provisioning", "drift", "--repair", "--wait"])

    assert result.exit_code == 0, result.output
    assert f"{department_id}: DEGRADED: gateway_route" in result.output
    assert client.get(f"/api/departments/{department_id}/health", headers=admin_headers).get_json()[
        "healthy"
    ]
