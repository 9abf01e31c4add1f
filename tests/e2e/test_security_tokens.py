"""Attacks with API tokens on the running API: tokens made to live for a
century, tokens that should have been revoked, and a department token that
outlives its department and opens the one created again under the same id."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import API_PORT, Stack, department_payload, make_token
from tests.e2e.conftest import submit, wait_for_job

BASE = f"http://127.0.0.1:{API_PORT}"


def _status(token: str, path: str = "/api/departments") -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.get(f"{BASE}{path}", headers=headers, timeout=10).status_code


def _statuses(token: str, times: int = 6) -> set[int]:
    """Several requests, so that both gunicorn workers answer."""
    return {_status(token) for _ in range(times)}


def test_the_cli_refuses_a_token_longer_than_the_maximum(app: Flask) -> None:
    runner = app.test_cli_runner()
    args = ["token", "create", "--email", "a@example.com", "--role", "admin", "--ttl"]
    refused = runner.invoke(args=[*args, "36500d"])
    assert refused.exit_code != 0
    assert "at most 30 days" in refused.output
    assert runner.invoke(args=[*args, "30d"]).exit_code == 0


def test_a_token_signed_with_the_key_but_living_for_a_century_is_refused(
    app: Flask, live_stack: Stack
) -> None:
    now = int(time.time())
    claims = {"sub": "a@example.com", "email": "a@example.com", "role": "admin", "jti": "c"}
    secret = app.config["JWT_SECRET_KEY"]
    century = jwt.encode({**claims, "iat": now, "exp": now + 100 * 365 * 86400}, secret)
    month = jwt.encode({**claims, "iat": now, "exp": now + 29 * 86400}, secret)
    assert _statuses(century) == {401}
    assert _statuses(month) == {200}


def test_a_revoked_token_is_refused_by_every_api_process(app: Flask, live_stack: Stack) -> None:
    token = make_token(app, email="leaked@example.com")
    other = make_token(app, email="leaked@example.com")
    assert _statuses(token) == {200}

    result = app.test_cli_runner().invoke(args=["token", "revoke", token])

    assert result.exit_code == 0, result.output
    assert _statuses(token) == {401}
    assert _statuses(other) == {200}  # one token, not the user


def test_a_token_used_until_it_expires_is_refused_from_then_on(
    app: Flask, live_stack: Stack
) -> None:
    """Each API process keeps the tokens it verified (app/api/verified_tokens.py):
    one it kept must still stop working the second it expires."""
    token = make_token(app, email="brief@example.com", ttl=timedelta(seconds=3))
    assert _statuses(token) == {200}
    time.sleep(3.2)
    assert _statuses(token) == {401}


def test_tokens_in_the_original_services_format_are_bounded_and_revocable(
    app: Flask, live_stack: Stack
) -> None:
    """Its issuer signs only email, role, departmentId and exp: no iat, no jti."""
    secret = app.config["JWT_SECRET_KEY"]
    claims = {"email": "original@example.com", "role": "admin", "departmentId": "hr"}
    century = jwt.encode({**claims, "exp": int(time.time()) + 100 * 365 * 86400}, secret)
    assert _statuses(century) == {401}
    token = jwt.encode({**claims, "exp": int(time.time()) + 3600}, secret)
    assert _statuses(token) == {200}
    result = app.test_cli_runner().invoke(args=["token", "revoke", token])
    assert result.exit_code == 0, result.output
    assert _statuses(token) == {401}


def test_revoking_a_user_refuses_every_token_issued_so_far(app: Flask, live_stack: Stack) -> None:
    tokens = [make_token(app, email="leaver@example.com") for _ in range(3)]
    result = app.test_cli_runner().invoke(args=["token", "revoke", "--email", "leaver@example.com"])
    assert result.exit_code == 0, result.output
    assert all(_statuses(token) == {401} for token in tokens)
    time.sleep(1.1)  # issue times are whole seconds: a token from the next one is new
    assert _statuses(make_token(app, email="leaver@example.com")) == {200}


@pytest.mark.parametrize("argv", [[], ["not-a-token"], ["x", "--email", "a@b.c"]])
def test_revoke_without_a_proper_target_fails_clearly(app: Flask, argv: list[str]) -> None:
    result = app.test_cli_runner().invoke(args=["token", "revoke", *argv])
    assert result.exit_code != 0
    assert result.output.strip()


def _provision(client: FlaskClient, headers: dict[str, str], department_id: str) -> str:
    job = submit(client, headers, department_payload(department_id))
    assert wait_for_job(job, 180)["status"] == "completed"
    return job


def test_a_department_token_does_not_open_the_department_created_again(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    first_job = _provision(client, admin_headers, department_id)
    old = make_token(app, "department", department_id, ttl=timedelta(hours=1))
    own_status = f"/api/provision-status/{first_job}"
    assert _status(old, own_status) == 200

    removal = client.delete(f"/api/deprovision/{department_id}", headers=admin_headers)
    assert wait_for_job(str(removal.get_json()["provisioningId"]), 120)["status"] == "completed"
    second_job = _provision(client, admin_headers, department_id)

    assert _status(old, f"/api/provision-status/{second_job}") == 401
    assert _status(old, f"/api/departments/{department_id}/history") == 401
    new = make_token(app, "department", department_id, ttl=timedelta(hours=1))
    assert _status(new, f"/api/provision-status/{second_job}") == 200
    client.delete(f"/api/deprovision/{department_id}", headers=admin_headers)


def _stream_text(job_id: str, token: str) -> str:
    """The whole event stream of a finished job: replayed, then its end."""
    response = requests.get(
        f"{BASE}/api/provision-status/{job_id}/events",
        headers={"Authorization": f"Bearer {token}"},
        stream=True,
        timeout=30,
    )
    text = ""
    for chunk in response.iter_content(chunk_size=None, decode_unicode=True):
        text += chunk
        if "event: end" in text:
            break
    response.close()
    return text


def test_a_department_token_sees_step_errors_and_logs_redacted(
    app: Flask,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: Any,
    live_stack: Stack,
) -> None:
    payload = department_payload()
    # Not one of the stack's real secrets: test_security scans every table for those.
    configured = f"k{uuid.uuid4().hex}"
    echoed = (
        "upstream refused postgresql://orchestrator:hunter2-db-password@10.0.0.5/state "
        f"with api_key={configured}"
    )
    faults.arm(payload["departmentId"], "gateway.create", mode="fail", message=echoed)
    job = submit(client, admin_headers, payload)
    assert wait_for_job(job)["status"] == "failed"
    own = make_token(app, "department", payload["departmentId"])

    shown = {
        "status": requests.get(
            f"{BASE}/api/provision-status/{job}",
            headers={"Authorization": f"Bearer {own}"},
            timeout=10,
        ).text,
        "events": _stream_text(job, own),
    }

    for where, text in shown.items():
        assert "hunter2-db-password" not in text and configured not in text, where
        assert "[REDACTED]" in text, where
    operator = requests.get(
        f"{BASE}/api/provision-status/{job}", headers=admin_headers, timeout=10
    ).text
    assert "hunter2-db-password" in operator  # operators keep the detail they debug with


def test_a_request_verifies_its_token_once(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limiter's per-user key and the role check share one verification:
    each asked Redis for revocations (and the database, for department tokens)."""
    from app.api import auth

    asked: list[str] = []
    monkeypatch.setattr(auth, "is_revoked", lambda payload: asked.append(payload["jti"]) or False)
    assert client.get("/api/departments", headers=admin_headers).status_code == 200
    assert len(asked) == 1


def test_a_verified_token_never_vouches_for_the_next_request(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    """Even with one app context around both requests (and so one `g`)."""
    forged = jwt.encode({"email": "x@example.com", "role": "admin", "exp": 2**31}, "guess" * 10)
    with app.app_context():
        assert client.get("/api/departments", headers=admin_headers).status_code == 200
        refused = client.get("/api/departments", headers={"Authorization": f"Bearer {forged}"})
        assert refused.status_code == 401
        assert client.get("/api/departments").status_code == 401
    # The mark lives in the WSGI environ, where no request header can put it.
    marked = {"Provisioning.Token-Verified": "1", "provisioning.token_verified": "1"}
    assert requests.get(f"{BASE}/api/departments", headers=marked, timeout=10).status_code == 401
