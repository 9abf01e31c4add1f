"""The audit trail, end to end: API requests (through the real gunicorn API and
in-process), CLI commands, and reading it back through GET /api/audit."""

from __future__ import annotations

import getpass
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import API_PORT, department_payload, make_token, new_department_id
from tests.e2e.conftest import wait_for_job

API = f"http://127.0.0.1:{API_PORT}/api"
CLI_ACTOR = f"cli:{getpass.getuser()}"


def audit(client: FlaskClient, headers: dict[str, str], **query: Any) -> dict[str, Any]:
    response = client.get("/api/audit", query_string=query, headers=headers)
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def records_for(client: FlaskClient, headers: dict[str, str], department_id: str) -> list[Any]:
    """Oldest first, which reads better in assertions."""
    body = audit(client, headers, departmentId=department_id, perPage=500)
    return list(reversed(body["records"]))


def test_api_provision_and_deprovision_are_audited_with_actor_address_and_outcome(
    app: Flask, client: FlaskClient, faults: Any
) -> None:
    token = make_token(app, email="auditor@example.com")
    headers = {"Authorization": f"Bearer {token}"}
    payload = department_payload()
    department_id = payload["departmentId"]
    faults.arm(department_id, "database.create", mode="fail")  # a quick job

    # Through the real API process, over a real socket.
    response = requests.post(
        f"{API}/provision-department", json=payload, headers=headers, timeout=10
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["provisioningId"]
    assert wait_for_job(job_id, 120)["status"] == "failed"
    removal = requests.delete(f"{API}/deprovision/{department_id}", headers=headers, timeout=10)
    assert removal.status_code == 202, removal.text
    wait_for_job(removal.json()["provisioningId"], 120)

    provision, deprovision = records_for(client, headers, department_id)
    assert provision["action"] == "provision" and provision["outcome"] == "accepted"
    assert (provision["actor"], provision["sourceIp"]) == ("auditor@example.com", "127.0.0.1")
    assert (provision["target"], provision["departmentId"]) == (department_id, department_id)
    assert provision["details"]["provisioningId"] == job_id
    assert provision["details"]["method"] == "POST"
    assert datetime.fromisoformat(provision["at"]) > datetime.now(UTC) - timedelta(minutes=5)
    assert (deprovision["action"], deprovision["outcome"]) == ("deprovision", "accepted")
    assert deprovision["details"]["provisioningId"] == removal.json()["provisioningId"]


def test_rejected_requests_are_audited_too(app: Flask, client: FlaskClient) -> None:
    admin = {"Authorization": f"Bearer {make_token(app, email='admin@example.com')}"}
    department_id = new_department_id()
    own = {
        "Authorization": f"Bearer {make_token(app, 'department', department_id, email='d@x.com')}"
    }

    invalid = department_payload(department_id, region="mars")
    assert client.post("/api/provision-department", json=invalid, headers=admin).status_code == 422
    valid = department_payload(department_id)
    assert client.post("/api/provision-department", json=valid, headers=own).status_code == 403
    assert client.post("/api/provision-department", json=valid).status_code == 401
    assert client.delete(f"/api/deprovision/{department_id}", headers=admin).status_code == 404

    rows = records_for(client, admin, department_id)
    assert [(r["action"], r["outcome"], r["actor"]) for r in rows] == [
        ("provision", "rejected:422", "admin@example.com"),
        ("provision", "rejected:403", "d@x.com"),
        # the anonymous 401 is only counted: strangers never write to the trail
        ("deprovision", "rejected:404", "admin@example.com"),
    ]
    assert rows[0]["details"]["fields"] == ["region"]
    assert "mars" not in json.dumps(rows[0]["details"])  # field names, never values
    assert all(r["sourceIp"] == "127.0.0.1" for r in rows)


def test_cli_commands_are_audited_as_the_cli_user(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    department_id = new_department_id()
    runner = app.test_cli_runner()
    created = runner.invoke(
        args=[
            "token",
            "create",
            "--email",
            "ci@example.com",
            "--role",
            "department",
            "--department",
            department_id,
            "--ttl",
            "10m",
        ]
    )
    assert created.exit_code == 0, created.output
    refused = runner.invoke(
        args=["token", "create", "--email", "ci@example.com", "--role", "department"]
    )
    assert refused.exit_code != 0
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps(department_payload(department_id, region="mars")))
    assert runner.invoke(args=["provisioning", "provision", str(bad_file)]).exit_code != 0
    assert runner.invoke(args=["provisioning", "retry", department_id]).exit_code != 0

    token_rows = audit(client, admin_headers, action="token.create", actor=CLI_ACTOR, perPage=500)[
        "records"
    ]
    ok = next(r for r in token_rows if r["departmentId"] == department_id)
    assert (ok["outcome"], ok["target"], ok["sourceIp"]) == ("ok", "token:ci@example.com", None)
    assert ok["details"] == {"role": "department", "departmentId": department_id, "ttl": "10m"}
    assert created.output.strip() not in json.dumps(token_rows)  # the token is never kept
    assert any(r["outcome"] == "rejected:invalid" for r in token_rows)

    provision = audit(client, admin_headers, action="provision", actor=CLI_ACTOR, perPage=500)[
        "records"
    ]
    assert any(
        r["target"] == f"file:{bad_file}" and r["outcome"] == "rejected:invalid" for r in provision
    )
    retry = records_for(client, admin_headers, department_id)[-1]
    assert (retry["action"], retry["outcome"], retry["actor"]) == (
        "retry",
        "rejected:not_found",
        CLI_ACTOR,
    )


def test_audit_is_filtered_by_department_and_time_and_paginated(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    from app.domain.services.audit import record_action

    department_id, other = new_department_id(), new_department_id()
    before = datetime.now(UTC)
    for n in range(5):
        record_action("cancel", department_id, "ok", "ops@example.com", "10.0.0.1", {"n": n})
    record_action("cancel", other, "ok", "ops@example.com", None)
    time.sleep(0.05)
    after = datetime.now(UTC)

    pages = [
        audit(client, admin_headers, departmentId=department_id, perPage=2, page=page)
        for page in (1, 2, 3)
    ]
    assert {p["total"] for p in pages} == {5}
    numbers = [r["details"]["n"] for p in pages for r in p["records"]]
    assert numbers == [4, 3, 2, 1, 0]  # newest first, each exactly once
    window = audit(
        client,
        admin_headers,
        departmentId=department_id,
        **{"from": before.isoformat(), "to": after.isoformat()},
    )
    assert window["total"] == 5
    assert (
        audit(client, admin_headers, departmentId=department_id, **{"from": after.isoformat()})[
            "total"
        ]
        == 0
    )
    assert (
        audit(client, admin_headers, departmentId=department_id, **{"to": before.isoformat()})[
            "total"
        ]
        == 0
    )
    wrong_way = client.get(
        "/api/audit",
        query_string={"from": after.isoformat(), "to": before.isoformat()},
        headers=admin_headers,
    )
    assert wrong_way.status_code == 422

    own = {"Authorization": f"Bearer {make_token(app, 'department', department_id)}"}
    assert client.get(f"/api/audit?departmentId={department_id}", headers=own).status_code == 403
    assert client.get("/api/audit").status_code == 401


def test_odd_details_are_kept_and_an_outage_never_breaks_the_caller(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    from app.domain.services.audit import record_action
    from app.persistence.database import db
    from tests.conftest import STATE_URL

    department_id = new_department_id()
    odd = {"when": datetime.now(UTC), "note": "nul\x00byte"}
    record_action("repair", department_id, "ok", "a\x00b", None, odd)
    (kept,) = audit(client, admin_headers, departmentId=department_id)["records"]
    assert isinstance(kept["details"]["when"], str)
    assert (kept["details"]["note"], kept["actor"]) == ("nulbyte", "ab")

    db.init("postgresql+psycopg2://postgres@127.0.0.1:1/unreachable")  # the database is down
    try:
        record_action("repair", department_id, "ok", None, None)  # logged, not raised
    finally:
        db.init(STATE_URL)
    assert audit(client, admin_headers, departmentId=department_id)["total"] == 1
