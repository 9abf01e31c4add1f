"""`flask provisioning ...` and `flask token create`, as operators use them."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import psycopg2
from flask import Flask

from tests.conftest import TEST_DB, TEST_PREFIX, Stack, department_payload
from tests.e2e.conftest import leftovers
from tests.support import probes
from tests.support.caddy_admin import caddy_admin


def test_token_create_mints_a_token_with_the_claims(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=[
            "token",
            "create",
            "--email",
            "a@example.com",
            "--role",
            "department",
            "--department",
            "zt-x",
            "--ttl",
            "30m",
        ]
    )
    assert result.exit_code == 0, result.output
    # stdout alone: a warning (no such department yet) goes to stderr
    claims = jwt.decode(result.stdout.strip(), app.config["JWT_SECRET_KEY"], algorithms=["HS256"])
    assert (claims["email"], claims["role"], claims["departmentId"]) == (
        "a@example.com",
        "department",
        "zt-x",
    )
    assert claims["exp"] - claims["iat"] == 1800
    bad = app.test_cli_runner().invoke(
        args=["token", "create", "--email", "a@example.com", "--role", "department"]
    )
    assert bad.exit_code != 0 and "--department" in bad.output


def test_provision_from_a_file_waits_and_reports(
    live_stack: Stack, app: Flask, tmp_path: Path
) -> None:
    payload = department_payload()
    config_file = tmp_path / "dept.json"
    config_file.write_text(json.dumps(payload))
    runner = app.test_cli_runner()

    result = runner.invoke(args=["provisioning", "provision", str(config_file), "--wait"])
    assert result.exit_code == 0, result.output
    assert "100% completed" in result.output

    listed = runner.invoke(args=["provisioning", "list", "--status", "ACTIVE"])
    assert payload["departmentId"] in listed.output
    status = runner.invoke(args=["provisioning", "status", payload["departmentId"]])
    assert json.loads(status.output)["status"] == "completed"
    again = runner.invoke(args=["provisioning", "provision", str(config_file)])
    assert again.exit_code == 6 and "already ACTIVE" in again.output  # Exit.CONFLICT


def test_provision_rejects_an_invalid_file_with_field_details(app: Flask, tmp_path: Path) -> None:
    config_file = tmp_path / "bad.json"
    config_file.write_text(json.dumps(department_payload(region="mars")))
    result = app.test_cli_runner().invoke(args=["provisioning", "provision", str(config_file)])
    assert result.exit_code != 0 and "region" in result.output


def test_cleanup_removes_resources_that_have_no_record(live_stack: Stack, app: Flask) -> None:
    """Resources made behind the orchestrator's back: a schema, a role, a route."""
    department_id = TEST_PREFIX + "orphan" + department_payload()["departmentId"][-4:]
    slug = department_id
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=f"{TEST_DB}_tenants")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE ROLE "{slug}_role" LOGIN')
        cur.execute(f'CREATE SCHEMA "{slug}_tenant" AUTHORIZATION "{slug}_role"')
    conn.close()
    admin = live_stack.env["CADDY_ADMIN_URL"]
    route = {
        "@id": f"dept-{department_id}",
        "match": [{"path": [f"/departments/{department_id}/*"]}],
        "handle": [{"handler": "static_response", "body": "orphan"}],
    }
    caddy_admin(
        admin, "PUT", "/config/apps/http/servers/gateway/routes/0", json=route
    ).raise_for_status()
    assert set(leftovers(live_stack, department_id)) == {"schema", "role", "gateway_routes"}

    result = app.test_cli_runner().invoke(args=["provisioning", "cleanup", department_id])

    assert result.exit_code == 0, result.output
    assert "gateway" in result.output and "database" in result.output
    assert leftovers(live_stack, department_id) == {}
    assert not probes.tenant_role_exists(department_id)


def test_cleanup_and_retry_refuse_bad_input(app: Flask) -> None:
    runner = app.test_cli_runner()
    bad = runner.invoke(args=["provisioning", "cleanup", "../etc"])
    assert bad.exit_code != 0 and "departmentId must match" in bad.output
    unknown = runner.invoke(args=["provisioning", "retry", "00000000-0000-0000-0000-000000000000"])
    assert unknown.exit_code != 0 and "not found" in unknown.output


def test_sweep_runs_once(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["provisioning", "sweep"])
    assert result.exit_code == 0 and "stalled job(s) handled" in result.output


def test_retry_of_a_failed_job_starts_a_new_job_that_completes(
    live_stack: Stack,
    app: Flask,
    client: object,
    admin_headers: dict[str, str],
    faults: object,
) -> None:
    from tests.e2e.conftest import submit, wait_for_job

    payload = department_payload()
    faults.arm(payload["departmentId"], "gateway.create", mode="fail", times=1)  # type: ignore[attr-defined]
    failed = wait_for_job(submit(client, admin_headers, payload))  # type: ignore[arg-type]
    assert failed["status"] == "failed"

    retry = ["provisioning", "retry", failed["provisioningId"], "--json"]
    result = app.test_cli_runner().invoke(args=retry)
    assert result.exit_code == 0, result.output
    new_job = json.loads(result.output)["provisioningId"]
    assert new_job != failed["provisioningId"]
    assert wait_for_job(new_job)["status"] == "completed"


def test_cleanup_removes_a_provisioned_department_whose_records_are_lost(
    live_stack: Stack,
    app: Flask,
    client: object,
    admin_headers: dict[str, str],
) -> None:
    """Every component's delete works from the departmentId alone."""
    from tests.e2e.conftest import submit, wait_for_job

    payload = department_payload()
    department_id = payload["departmentId"]
    assert wait_for_job(submit(client, admin_headers, payload))["status"] == "completed"  # type: ignore[arg-type]
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM provisioning_jobs WHERE department_pk = "
            "(SELECT id FROM departments WHERE department_id = %s)",
            (department_id,),
        )
        cur.execute("DELETE FROM departments WHERE department_id = %s", (department_id,))
    conn.close()
    assert set(leftovers(live_stack, department_id)) == {
        "schema",
        "role",
        "oauth_client",
        "agent_pids",
        "gateway_routes",
        "workflows",
    }

    result = app.test_cli_runner().invoke(args=["provisioning", "cleanup", department_id])

    assert result.exit_code == 0, result.output
    assert leftovers(live_stack, department_id) == {}
