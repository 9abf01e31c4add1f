"""The OpenAPI document is a complete contract (tests/e2e/test_api_fuzz.py holds
the server to it), and the standard headers it declares are really answered:
Link on list pages (RFC 8288), ETag on a department and If-Match on PATCH."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from tests.conftest import API_PORT, Stack, department_payload
from tests.e2e.conftest import submit, wait_for_job

BASE_URL = f"http://127.0.0.1:{API_PORT}"
PROBLEM_REF = "#/components/schemas/Problem"


@pytest.fixture(scope="module")
def spec(live_stack: Stack) -> dict[str, Any]:
    document: dict[str, Any] = requests.get(f"{BASE_URL}/openapi.json", timeout=10).json()
    return document


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    ]


def _resolve(spec: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in response:
        name = response["$ref"].rsplit("/", 1)[-1]
        resolved: dict[str, Any] = spec["components"]["responses"][name]
        return resolved
    return response


def test_every_operation_has_a_unique_operation_id(spec: dict[str, Any]) -> None:
    ids = [op.get("operationId") for _, _, op in _operations(spec)]
    assert all(ids) and len(ids) == len(set(ids)), ids
    assert {"oauthToken", "oauthIntrospect", "oauthRevoke"} <= set(ids)


def test_errors_are_documented_as_problems(spec: dict[str, Any]) -> None:
    for _, path, op in _operations(spec):
        if not path.startswith("/api/"):
            continue
        expected = {"401", "403"} | ({"404"} if "{" in path else set())
        assert expected <= set(op["responses"]), (path, sorted(op["responses"]))
        for code, response in op["responses"].items():
            if code == "default" or int(code) >= 400:
                content = _resolve(spec, response)["content"]
                assert content["application/problem+json"]["schema"]["$ref"] == PROBLEM_REF


def test_headers_are_declared(spec: dict[str, Any]) -> None:
    provision = spec["paths"]["/api/provision-department"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in provision["parameters"]}
    for _, _, op in _operations(spec):
        if "202" in op["responses"]:
            assert op["responses"]["202"]["headers"]["Location"]["required"] is True
    too_many = spec["components"]["responses"]["TOO_MANY_REQUESTS"]
    assert "Retry-After" in too_many["headers"]
    departments = spec["paths"]["/api/departments"]["get"]["responses"]["200"]
    assert "Link" in departments["headers"]
    one = spec["paths"]["/api/departments/{department_id}"]
    assert "ETag" in one["get"]["responses"]["200"]["headers"]
    assert "If-Match" in {p["name"] for p in one["patch"]["parameters"]}
    assert "412" in one["patch"]["responses"]


def test_types_say_what_values_are(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    status = schemas["ProvisionStatus"]["properties"]
    assert status["startedAt"]["format"] == "date-time"
    assert {"provision", "deprovision", "update", "repair"} <= set(status["kind"]["enum"])
    assert "deploying_workflows" in status["status"]["enum"]
    assert "DEGRADED" in schemas["Department"]["properties"]["status"]["enum"]
    events = spec["paths"]["/api/provision-status/{provisioning_id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]


def _links(response: requests.Response) -> dict[str, str]:
    return {
        rel: url for url, rel in re.findall(r'<([^>]+)>; rel="([a-z]+)"', response.headers["Link"])
    }


def test_list_pages_link_to_each_other(admin_headers: dict[str, str], live_stack: Stack) -> None:
    for _ in range(3):  # refused submissions are audited too: at least three records
        requests.post(
            f"{BASE_URL}/api/provision-department", json={}, headers=admin_headers, timeout=10
        )
    url = f"{BASE_URL}/api/audit?perPage=1&page=2&action=provision"
    page = requests.get(url, headers=admin_headers, timeout=10)
    assert page.status_code == 200
    links = _links(page)
    assert set(links) == {"first", "prev", "next", "last"}
    assert "action=provision" in links["next"] and "page=3" in links["next"]
    following = requests.get(links["next"], headers=admin_headers, timeout=10).json()
    assert following["page"] == 3
    last = requests.get(links["last"], headers=admin_headers, timeout=10)
    assert "next" not in _links(last) and last.json()["page"] == page.json()["total"]


def test_patch_with_a_stale_etag_is_refused(
    client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    assert wait_for_job(submit(client, admin_headers, payload))["status"] == "completed"
    url = f"{BASE_URL}/api/departments/{department_id}"
    first = requests.get(url, headers=admin_headers, timeout=10)
    assert first.status_code == 200 and first.json()["status"] == "ACTIVE"
    etag = first.headers["ETag"]
    assert requests.get(url, headers=admin_headers, timeout=10).headers["ETag"] == etag

    changed = requests.patch(
        url,
        json={"deletionProtection": True},
        headers={**admin_headers, "If-Match": etag},
        timeout=10,
    )
    assert changed.status_code == 200 and changed.json()["deletionProtection"] is True
    stale = requests.patch(
        url,
        json={"deletionProtection": False},
        headers={**admin_headers, "If-Match": etag},
        timeout=10,
    )
    assert stale.status_code == 412
    assert stale.headers["Content-Type"] == "application/problem+json"
    now = requests.get(url, headers=admin_headers, timeout=10)
    assert now.json()["deletionProtection"] is True and now.headers["ETag"] != etag
    unconditional = requests.patch(
        url, json={"deletionProtection": False}, headers=admin_headers, timeout=10
    )
    assert unconditional.status_code == 200
