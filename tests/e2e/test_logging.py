"""Structured JSON logs from the real API and worker processes of the test stack."""

from __future__ import annotations

import io
import json
import logging
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import API_PORT, TEST_DB, Stack, department_payload
from tests.e2e.conftest import wait_for_job
from tests.support.observability import configured_secrets, department_secrets, json_lines

BASE = f"http://127.0.0.1:{API_PORT}"
CONTEXT_KEYS = {"requestId", "provisioningId", "departmentId", "step"}
STEP_NAMES = {
    "validate_config",
    "create_database",
    "create_oauth",
    "deploy_container",
    "deploy_workflows",
    "configure_gateway",
    "validate_deployment",
}


def test_request_id_is_honoured_generated_or_replaced(live_stack: Stack) -> None:
    given = requests.get(
        f"{BASE}/openapi.json", headers={"X-Request-ID": "trace-1.a:b"}, timeout=10
    )
    assert given.headers["X-Request-ID"] == "trace-1.a:b"

    generated = requests.get(f"{BASE}/openapi.json", timeout=10).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)

    for forged in ("x" * 200, 'a"b{c}', "two words"):
        answer = requests.get(f"{BASE}/openapi.json", headers={"X-Request-ID": forged}, timeout=10)
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-ID"]), forged


def _lines_of_job(path: Path, job_id: str, wanted_steps: set[str]) -> list[dict[str, Any]]:
    """The job's lines in a log, once every wanted step shows (the writes trail the DB)."""
    deadline = time.monotonic() + 10
    while True:
        lines = [r for r in json_lines(path) if r.get("provisioningId") == job_id]
        if wanted_steps <= {r.get("step") for r in lines} or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def test_api_and_worker_lines_carry_the_request_and_job_context(
    live_stack: Stack, admin_headers: dict[str, str]
) -> None:
    request_id = f"it-{uuid.uuid4().hex}"
    payload = department_payload()
    response = requests.post(
        f"{BASE}/api/provision-department",
        json=payload,
        headers={**admin_headers, "X-Request-ID": request_id},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    assert response.headers["X-Request-ID"] == request_id
    job_id = response.json()["provisioningId"]
    assert wait_for_job(job_id)["status"] == "completed"

    api = json_lines(live_stack.api.log_path)
    http = [r for r in api if r["logger"] == "provisioning.http" and r["requestId"] == request_id]
    assert [(r["method"], r["path"], r["status"]) for r in http] == [
        ("POST", "/api/provision-department", 202)
    ]
    submitted = [r for r in api if r.get("provisioningId") == job_id]
    assert submitted and all(r["requestId"] == request_id for r in submitted)

    worker = _lines_of_job(live_stack.worker.log_path, job_id, STEP_NAMES)
    assert {r["step"] for r in worker} >= STEP_NAMES
    # The request id crossed the broker: every task of the chain carries it.
    assert {r["requestId"] for r in worker} == {request_id}
    journal = [r for r in worker if r["logger"] == "provisioning"]
    assert journal and {r["departmentId"] for r in journal} == {payload["departmentId"]}
    for record in api + worker:
        assert CONTEXT_KEYS | {"time", "level", "logger", "message"} <= set(record)


def test_no_secret_reaches_any_log(live_stack: Stack, admin_headers: dict[str, str]) -> None:
    secrets = department_secrets(TEST_DB) + configured_secrets()
    secrets.append(admin_headers["Authorization"].split()[1])
    assert len(secrets) >= 5  # at least one department's two secrets, three settings, a token
    logs = sorted(live_stack.log_dir.glob("*.log"))
    assert any(path.name.startswith("worker") for path in logs)
    for path in logs:
        text = path.read_text(errors="replace")
        leaked = [secret[:4] + "..." for secret in secrets if secret in text]
        assert not leaked, f"{path.name} contains secrets {leaked}"


@pytest.fixture()
def captured() -> Any:
    """A logger wired with the production handler (JSON, context, redaction)."""
    from app import config
    from app.observability.logs import build_handler

    stream = io.StringIO()
    settings = config.current().model_copy(update={"LOG_FORMAT": "json"})
    handler = build_handler(settings, stream)
    logger = logging.getLogger(f"test.redaction.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_secret_shaped_values_are_redacted(app: Any, captured: Any) -> None:
    from app import config

    logger, records = captured
    jwt_secret = config.current().JWT_SECRET
    logger.info("dsn postgresql://svc:Sup3rSecretPw@db:5432/x")
    logger.info("header Authorization: Bearer abc.def-ghi")
    logger.info("sent password=hunter2hunter2 and api_key: 'k-0123456789'")
    logger.info("signed with %s", jwt_secret)
    logger.info(
        "client",
        extra={"client_secret": "cs-abcdef012345", "body": {"apiKey": "zzz999zzz", "name": "hr"}},
    )
    try:
        raise ValueError("login failed: password=Tr0ub4dor&3")
    except ValueError:
        logger.exception("provider error")

    out = records()
    text = json.dumps(out)
    for secret in (
        "Sup3rSecretPw",
        "abc.def-ghi",
        "hunter2hunter2",
        "k-0123456789",
        jwt_secret,
        "cs-abcdef012345",
        "zzz999zzz",
        "Tr0ub4dor",
    ):
        assert secret not in text, secret
    assert out[0]["message"] == "dsn postgresql://svc:[REDACTED]@db:5432/x"
    assert out[4]["body"] == {"apiKey": "[REDACTED]", "name": "hr"}
    assert "ValueError" in out[5]["exc_info"]
