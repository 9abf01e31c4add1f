"""Every error the live API answers is an RFC 9457 problem (application/problem+json),
and keeps the `code`, `message` and per-field `errors` earlier clients read."""

from __future__ import annotations

from typing import Any

import requests
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import API_PORT, Stack, department_payload, make_token
from tests.e2e.conftest import submit, wait_for_job

BASE_URL = f"http://127.0.0.1:{API_PORT}"


def _problem(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "about:blank" and body["status"] == status
    assert body["title"] and body["detail"]
    assert body["instance"] == requests.utils.urlparse(response.url).path
    assert body["requestId"] == response.headers["X-Request-ID"]
    assert body["code"] == status and body["message"] == body["detail"]
    return body


def test_401_403_404_405_422_are_problems(live_stack: Stack, app: Flask) -> None:
    url = f"{BASE_URL}/api/departments"
    missing = _problem(requests.get(url, timeout=10), 401)
    assert "Authorization" in missing["detail"]
    bad = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
    _problem(bad, 401)
    assert bad.headers["WWW-Authenticate"] == "Bearer"

    dept = {"Authorization": f"Bearer {make_token(app, role='department', department_id='zz-a')}"}
    _problem(requests.get(f"{BASE_URL}/api/audit", headers=dept, timeout=10), 403)

    admin = {"Authorization": f"Bearer {make_token(app)}"}
    _problem(requests.get(f"{url}/zz-none/history", headers=admin, timeout=10), 404)
    _problem(requests.get(f"{BASE_URL}/no/such/path", timeout=10), 404)

    not_allowed = _problem(requests.request("TRACE", url, timeout=10), 405)
    assert not_allowed["title"] == "Method Not Allowed"

    invalid = requests.post(
        f"{BASE_URL}/api/provision-department",
        json=department_payload(region="mars-1", sneaky=1),
        headers=admin,
        timeout=10,
    )
    errors = _problem(invalid, 422)["errors"]["json"]
    assert {"region", "sneaky"} <= set(errors)


def test_409_for_an_active_department(client: FlaskClient, admin_headers: dict[str, str]) -> None:
    payload = department_payload()
    assert wait_for_job(submit(client, admin_headers, payload))["status"] == "completed"
    again = requests.post(
        f"{BASE_URL}/api/provision-department", json=payload, headers=admin_headers, timeout=10
    )
    assert "ACTIVE" in _problem(again, 409)["detail"]
