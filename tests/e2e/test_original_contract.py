"""The original service's README, replayed against the real stack over HTTP.

Each request and response example of /work/shared/spec/original-README.md is
here verbatim; every field those examples document is checked for presence,
name and JSON type (values that are the example's own, like ids and times, are
checked for shape). Richer answers are fine: only what the original documents
is required. The one change to a request: `departmentId`, made unique per run
so parallel suites and a developer's own `hr` never collide (the verbatim `hr`
body is checked by a dry run, which changes nothing).
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import requests
import yaml
from flask import Flask

from app.openapi_doc import OPENAPI_FILE
from tests.conftest import API_PORT, TEST_PREFIX, Stack, make_token
from tests.e2e.conftest import leftovers

BASE = f"http://127.0.0.1:{API_PORT}"

# "1. Provision Department", request, verbatim.
ORIGINAL_REQUEST: dict[str, Any] = {
    "departmentId": "hr",
    "departmentName": "Human Resources",
    "businessType": "enterprise",
    "workflows": ["email", "google_drive", "database"],
    "dataRetention": "90d",
    "region": "us-west",
    "resources": {"cpu": "1", "memory": "2Gi"},
    "adminEmail": "admin@synrgscaling.com",
    "googleWorkspaceDomain": "synrgscaling.com",
    "enabledTools": ["email", "google_drive", "database"],
    "customConfig": {},
}
# The response examples' documented fields and their JSON types.
ACCEPTED = {
    "provisioningId": str,
    "departmentId": str,
    "status": str,
    "message": str,
    "statusUrl": str,
    "deploymentUrl": str,
    "dashboardUrl": str,
}
STATUS = {
    "provisioningId": str,
    "departmentId": str,
    "status": str,
    "progress": dict,
    "currentStep": str,
    "startedAt": str,
    "estimatedCompletion": str,
    "logs": list,
}
PROGRESS = {
    "percentage": int,
    "database": str,
    "railway": str,
    "docker": str,
    "n8n": str,
    "oauth": str,
}
COMPONENT_STATES = {
    "pending",
    "in_progress",
    "completed",
    "failed",
    "rolling_back",
    "rolled_back",
    "skipped",
}
LISTED = {
    "id": str,
    "departmentId": str,
    "departmentName": str,
    "status": str,
    "railwayDeploymentUrl": str,
    "createdAt": str,
}
HEALTH = {"departmentId": str, "healthy": bool, "checks": list, "lastCheck": str}
CHECK = {"name": str, "healthy": bool, "latency": int}
ORIGINAL_CHECKS = {"railway_agent", "database_connectivity", "n8n_workflows", "oauth_credentials"}
DEPROVISIONING = {"departmentId": str, "status": str, "message": str, "cleanupProgress": int}
LOG_LINE = re.compile(r"^\[(?P<time>[^\]]+)\] \[(INFO|WARN|ERROR|DEBUG)\] .+")


def documented(body: dict[str, Any], fields: dict[str, type]) -> None:
    """Every documented field is there, under its name, with its JSON type."""
    missing = sorted(set(fields) - set(body))
    assert not missing, f"missing {missing} in {body}"
    for name, kind in fields.items():
        value = body[name]
        # JSON has one number type; a bool is not a number, an int is a number.
        wrong = isinstance(value, bool) and kind is not bool
        assert isinstance(value, kind) and not wrong, f"{name}={value!r} is not {kind.__name__}"


def a_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert text.endswith("Z") and moment.tzinfo is not None, text
    return moment


def original_token(app: Flask, **claims: Any) -> str:
    """A token as the original's issuer makes it: HS256 over exactly its documented payload."""
    payload = {
        "email": "admin@synrgscaling.com",
        "role": "admin",
        "departmentId": "hr",
        "exp": int((datetime.now(UTC) + timedelta(minutes=30)).timestamp()),
        **claims,
    }
    return jwt.encode(payload, app.config["JWT_SECRET_KEY"], algorithm="HS256")


def call(method: str, path: str, token: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.request(method, BASE + path, headers=headers, timeout=30, **kwargs)


def wait_done(path: str, token: str, timeout: float = 150.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = call("GET", path, token).json()
        if view.get("completedAt"):
            return view
        time.sleep(0.5)
    raise AssertionError(f"{path} did not finish: {view}")


def test_the_original_request_verbatim_is_valid(live_stack: Stack, app: Flask) -> None:
    token = original_token(app)
    response = call("POST", "/api/provision-department?dryRun=true", token, json=ORIGINAL_REQUEST)
    assert response.status_code == 200, response.text
    assert response.json()["departmentId"] == "hr"


def test_every_original_example_round_trips(live_stack: Stack, app: Flask) -> None:
    token = original_token(app)
    department_id = f"{TEST_PREFIX}hr{uuid.uuid4().hex[:6]}"
    request = {**ORIGINAL_REQUEST, "departmentId": department_id}

    accepted = call("POST", "/api/provision-department", token, json=request)
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    documented(body, ACCEPTED)
    job_id = body["provisioningId"]
    assert str(uuid.UUID(job_id)) == job_id and body["departmentId"] == department_id
    assert body["statusUrl"] == f"/api/provision-status/{job_id}"  # a path, prefixed by clients

    status = call("GET", body["statusUrl"], token)
    assert status.status_code == 200
    _status_example(status.json(), job_id, department_id)

    final = wait_done(body["statusUrl"], token)
    assert final["status"] == "completed", final
    _status_example(final, job_id, department_id)
    assert final["progress"]["percentage"] == 100

    _original_tools_granted_and_served(final, body["deploymentUrl"])
    _list_example(token, department_id)
    _health_example(token, department_id)
    _department_tokens_are_reissued(app, department_id)
    _deprovision_example(live_stack, token, department_id)


def _status_example(view: dict[str, Any], job_id: str, department_id: str) -> None:
    documented(view, STATUS)
    documented(view["progress"], PROGRESS)
    assert (view["provisioningId"], view["departmentId"]) == (job_id, department_id)
    assert view["status"] == view["status"].lower()
    assert 0 <= view["progress"]["percentage"] <= 100
    assert {view["progress"][c] for c in PROGRESS if c != "percentage"} <= COMPONENT_STATES
    assert a_time(view["estimatedCompletion"]) >= a_time(view["startedAt"])
    assert view["logs"] and all(isinstance(line, str) for line in view["logs"])
    for line in view["logs"]:
        match = LOG_LINE.match(line)
        assert match, line
        a_time(match["time"])


def _original_tools_granted_and_served(view: dict[str, Any], deployment_url: str) -> None:
    """`email` and `database` get scopes of their own and act as gmail and database_query."""
    oauth = next(step for step in view["steps"] if step["name"] == "create_oauth")
    assert sorted(oauth["outputs"]["scopes"]) == [
        "tools:database",
        "tools:email",
        "tools:google_drive",
    ]
    agent = requests.get(deployment_url, timeout=10).json()
    assert agent["tools"] == ["email", "google_drive", "database"]
    assert agent["toolBehaviours"] == {
        "email": "gmail",
        "google_drive": "google_drive",
        "database": "database_query",
    }


def _list_example(token: str, department_id: str) -> None:
    listed = call("GET", "/api/departments", token)
    assert listed.status_code == 200
    documented(listed.json(), {"departments": list, "total": int})
    # The suite leaves more departments than the default page holds: look on all.
    everything = call("GET", "/api/departments?perPage=500", token).json()["departments"]
    mine = [d for d in everything if d["departmentId"] == department_id]
    assert len(mine) == 1
    documented(mine[0], LISTED)
    assert mine[0]["status"] == "ACTIVE" and mine[0]["departmentName"] == "Human Resources"
    a_time(mine[0]["createdAt"])


def _health_example(token: str, department_id: str) -> None:
    health = call("GET", f"/api/departments/{department_id}/health", token)
    assert health.status_code == 200
    documented(health.json(), HEALTH)
    assert health.json()["departmentId"] == department_id and health.json()["healthy"] is True
    for check in health.json()["checks"]:
        documented(check, CHECK)
    names = {check["name"] for check in health.json()["checks"]}
    assert names >= ORIGINAL_CHECKS
    a_time(health.json()["lastCheck"])


def _department_tokens_are_reissued(app: Flask, department_id: str) -> None:
    """README: the original's department tokens lack the department's incarnation,
    so they are refused; one issued here reads its department."""
    path = f"/api/departments/{department_id}/health"
    original = original_token(app, role="department", departmentId=department_id)
    assert call("GET", path, original).status_code == 401
    reissued = make_token(app, "department", department_id)
    assert call("GET", path, reissued).status_code == 200


def _deprovision_example(live_stack: Stack, token: str, department_id: str) -> None:
    gone = call("DELETE", f"/api/deprovision/{department_id}", token)
    assert gone.status_code == 202, gone.text
    documented(gone.json(), DEPROVISIONING)
    assert gone.json()["status"] == "DEPROVISIONING"
    assert gone.json()["message"] == "Department deprovisioning initiated"
    assert 0 <= gone.json()["cleanupProgress"] <= 100
    assert set(gone.json()["cleanupComponents"]) >= {"database", "oauth", "n8n"}
    final = wait_done(gone.json()["statusUrl"], token)
    assert final["status"] == "completed", final
    assert leftovers(live_stack, department_id) == {}


def test_the_original_token_payload_is_accepted_and_its_roles_hold(
    live_stack: Stack, app: Flask
) -> None:
    """Its JWT payload (email, role, departmentId, exp) authenticates as documented."""
    assert call("GET", "/api/departments", original_token(app)).status_code == 200
    department = original_token(app, role="department", departmentId="hr")
    assert call("DELETE", "/api/deprovision/hr", department).status_code == 403
    expired = original_token(app, exp=int(time.time()) - 60)
    assert call("GET", "/api/departments", expired).status_code == 401
    assert call("GET", "/api/departments", make_token(app)).status_code == 200


def test_tokens_without_iat_still_obey_the_lifetime_bound_and_revocation(
    live_stack: Stack, app: Flask
) -> None:
    """The original's payload has no iat: the bound on a token's life is counted
    from now, and revoking the user refuses it whenever it was issued."""
    century = original_token(app, exp=int(time.time()) + 100 * 365 * 86400)
    assert call("GET", "/api/departments", century).status_code == 401
    email = f"leaver-{uuid.uuid4().hex[:6]}@synrgscaling.com"
    token = original_token(app, email=email)
    assert call("GET", "/api/departments", token).status_code == 200
    revoked = app.test_cli_runner().invoke(args=["token", "revoke", "--email", email])
    assert revoked.exit_code == 0, revoked.output
    assert call("GET", "/api/departments", token).status_code == 401


def test_the_committed_openapi_yaml_is_what_the_api_serves(live_stack: Stack) -> None:
    """The original links ./openapi.yaml; ours is generated (`make openapi`) and must not drift."""
    served = requests.get(f"{BASE}/openapi.json", timeout=10).json()
    committed = yaml.safe_load(OPENAPI_FILE.read_text())
    assert committed == served, "openapi.yaml is stale: run `make openapi` and commit it"
