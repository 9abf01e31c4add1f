"""The REST contract: validation, idempotency, conflicts, auth and docs."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import jwt
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.conftest import API_PORT, Stack, department_payload, make_token
from tests.e2e.conftest import submit, wait_for_job

BAD_FIELDS: list[tuple[str, Any]] = [
    ("departmentId", "HR"),
    ("departmentId", "1abc"),
    ("departmentId", "a"),
    ("departmentId", "x" * 32),
    ("departmentId", "hr;drop"),
    ("departmentId", "../etc"),
    ("departmentName", ""),
    ("departmentName", "bad\nname"),
    ("workflows", ["email", "email"]),
    ("workflows", ["fax"]),
    ("workflows", []),
    ("dataRetention", "30"),
    ("dataRetention", "0d"),
    ("dataRetention", "11y"),
    ("region", "mars-1"),
    ("resources", {"cpu": "0.01", "memory": "512Mi"}),
    ("resources", {"cpu": "1", "memory": "64Mi"}),
    ("resources", {"cpu": "abc", "memory": "1Gi"}),
    ("resources", {"cpu": "1", "memory": "32Gi"}),
    ("adminEmail", "not-an-email"),
    ("googleWorkspaceDomain", "Not A Domain"),
    ("enabledTools", ["teleport"]),
    ("customConfig", {"blob": "x" * 20_000}),
    ("customConfig", ["not", "an", "object"]),
]


def _department_count(department_id: str) -> int:
    from app.persistence.database import db
    from app.persistence.models import Department

    with db.transaction() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(Department)
                .where(Department.department_id == department_id)
            )
            or 0
        )


@pytest.mark.parametrize(
    ("field", "value"), BAD_FIELDS, ids=[f"{f}={v!r}"[:40] for f, v in BAD_FIELDS]
)
def test_invalid_fields_are_422_with_the_field_named_and_nothing_created(
    field: str,
    value: Any,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    payload = department_payload(**{field: value})
    response = client.post("/api/provision-department", json=payload, headers=admin_headers)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"], response.get_json()
    assert _department_count(str(payload["departmentId"])) == 0


def test_unknown_fields_and_foreign_admin_email_are_rejected(
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    unknown = client.post(
        "/api/provision-department",
        headers=admin_headers,
        json={**department_payload(), "sneaky": 1},
    )
    assert unknown.status_code == 422 and "sneaky" in unknown.get_json()["errors"]["json"]
    foreign = client.post(
        "/api/provision-department",
        headers=admin_headers,
        json=department_payload(adminEmail="boss@elsewhere.org"),
    )
    assert foreign.status_code == 422 and "adminEmail" in foreign.get_json()["errors"]["json"]
    missing = client.post("/api/provision-department", headers=admin_headers, json={})
    assert set(missing.get_json()["errors"]["json"]) >= {"departmentId", "workflows", "region"}


def test_a_second_request_for_a_department_in_flight_returns_the_same_job(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    payload = department_payload()
    first = submit(client, admin_headers, payload)
    second = client.post("/api/provision-department", json=payload, headers=admin_headers)
    assert second.status_code == 202
    assert str(second.get_json()["provisioningId"]) == first
    assert "already in progress" in second.get_json()["message"]
    assert wait_for_job(first)["status"] == "completed"
    again = client.post("/api/provision-department", json=payload, headers=admin_headers)
    assert again.status_code == 409


def test_idempotency_key_replays_the_first_response(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    payload = department_payload()
    headers = {**admin_headers, "Idempotency-Key": f"key-{payload['departmentId']}"}
    first = client.post("/api/provision-department", json=payload, headers=headers)
    wait_for_job(str(first.get_json()["provisioningId"]))
    replay = client.post("/api/provision-department", json=payload, headers=headers)
    assert replay.status_code == 202
    assert replay.get_json() == first.get_json()
    assert replay.headers["Location"] == first.headers["Location"]
    other = client.post(
        "/api/provision-department", headers=headers, json={**payload, "departmentName": "Changed"}
    )
    assert other.status_code == 422


def test_same_request_to_two_api_processes_at_once_makes_exactly_one_job(
    live_stack: Stack,
    admin_headers: dict[str, str],
) -> None:
    """gunicorn runs two worker processes; fire 8 identical requests at once."""
    payload = department_payload()
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def post() -> None:
        barrier.wait()
        response = requests.post(
            f"http://127.0.0.1:{API_PORT}/api/provision-department",
            json=payload,
            headers=admin_headers,
            timeout=30,
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["provisioningId"])

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 8 and len(set(ids)) == 1
    assert wait_for_job(ids[0])["status"] == "completed"


def test_unknown_ids_are_404(client: FlaskClient, admin_headers: dict[str, str]) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"/api/provision-status/{missing}", headers=admin_headers).status_code == 404
    assert client.delete("/api/deprovision/zt-nobody", headers=admin_headers).status_code == 404
    assert client.get("/api/departments/zt-nobody/health", headers=admin_headers).status_code == 404


def _forged(app: Flask, **changes: Any) -> str:
    now = int(time.time())  # a lifetime within JWT_MAX_TTL_DAYS, as a real token has
    claims = {
        "sub": "ops@example.com",
        "email": "ops@example.com",
        "role": "admin",
        "type": "access",
        "fresh": False,
        "jti": "x",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    }
    secret = changes.pop("secret", app.config["JWT_SECRET_KEY"])
    algorithm = changes.pop("algorithm", "HS256")
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, secret if algorithm != "none" else None, algorithm=algorithm)


def test_tokens_that_must_not_pass(app: Flask, client: FlaskClient) -> None:
    def status_with(token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return client.get("/api/departments", headers=headers).status_code

    assert status_with(None) == 401
    assert client.get("/api/departments", headers={"Authorization": "Basic abc"}).status_code == 401
    assert status_with("not.a.jwt") == 401
    assert status_with(make_token(app, ttl=timedelta(seconds=-5))) == 401
    assert status_with(_forged(app, secret="wrong-secret-" + "x" * 40)) == 401
    assert status_with(_forged(app, algorithm="none")) == 401
    assert status_with(_forged(app, nbf=4_000_000_000 - 10)) == 401
    assert status_with(_forged(app, role=None)) == 401
    assert status_with(_forged(app, email=None)) == 401
    assert status_with(_forged(app, role="department")) == 401  # no departmentId claim
    assert status_with(_forged(app, role="superuser")) == 403
    assert status_with(_forged(app)) == 200


def test_openapi_swagger_and_redoc_are_served_without_internet(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {
        "/api/provision-department",
        "/api/provision-status/{provisioning_id}",
        "/api/deprovision/{department_id}",
        "/api/departments",
        "/api/departments/{department_id}/health",
    } <= set(spec["paths"])
    swagger = client.get("/api-docs").get_data(as_text=True)
    redoc = client.get("/redoc").get_data(as_text=True)
    assert "/static/swagger-ui/swagger-ui-bundle.js" in swagger
    assert "/static/redoc/redoc.standalone.js" in redoc
    for asset in (
        "/static/swagger-ui/swagger-ui-bundle.js",
        "/static/swagger-ui/swagger-ui.css",
        "/static/swagger-ui/swagger-ui-standalone-preset.js",
        "/static/redoc/redoc.standalone.js",
    ):
        assert client.get(asset).status_code == 200, asset


def test_each_request_has_a_connection_of_its_own(live_stack: Stack) -> None:
    """Keep-alive let one gunicorn worker keep every connection a client opened
    at once, leaving the other idle and halving throughput (issue 16; see
    config/gunicorn.conf.py): the API closes each connection after answering,
    so the next request goes to whichever worker is free."""
    with requests.Session() as session:
        answers = [
            session.get(f"http://127.0.0.1:{API_PORT}/openapi.json", timeout=10) for _ in range(2)
        ]
    assert all(a.status_code == 200 for a in answers)
    assert all(a.headers.get("Connection", "").lower() == "close" for a in answers), [
        a.headers for a in answers
    ]
