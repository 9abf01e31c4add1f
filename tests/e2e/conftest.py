"""Fixtures for tests that drive the whole stack through the API."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import STATE_URL, TEST_DB, Stack
from tests.support import probes


@pytest.fixture(autouse=True)
def _state_database(app: Flask) -> None:
    """Other test modules point the process-wide engine elsewhere; point it back."""
    from app import config
    from app.config import load_settings
    from app.persistence.database import db

    db.init(STATE_URL)
    config.install(load_settings())


@pytest.fixture()
def faults(app: Flask) -> Iterator[Any]:
    from app.providers.faults import FaultInjector

    injector = FaultInjector(app.extensions["celery"].conf.broker_url)
    armed: list[str] = []

    class Faults:
        def arm(self, department_id: str, operation: str, **spec: Any) -> None:
            armed.append(department_id)
            injector.arm(department_id, operation, **spec)

    yield Faults()
    for department_id in armed:
        injector.clear(department_id)


@pytest.fixture()
def main_beat_paused(live_stack: Stack) -> Iterator[None]:
    """No sweeps from the main stack meanwhile: they would rescue another stack's
    job (both share the state database) or admit a waiting job early."""
    live_stack.beat.stop()
    try:
        yield
    finally:
        live_stack.beat.start()


def wait_until_no_job_runs(timeout: float = 120) -> None:
    """Tests that count places (MAX_ACTIVE_JOBS) start when no earlier test's job holds one."""
    from sqlalchemy import func, select

    from app.domain.states import TERMINAL_STATES
    from app.persistence.database import db
    from app.persistence.models import ProvisioningJob

    def running() -> int:
        with db.transaction() as session:
            count = session.scalar(
                select(func.count())
                .select_from(ProvisioningJob)
                .where(
                    ProvisioningJob.admitted_at.is_not(None),
                    ProvisioningJob.state.not_in([s.value for s in TERMINAL_STATES]),
                )
            )
        return count or 0

    deadline = time.monotonic() + timeout
    while running() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert running() == 0, "jobs of earlier tests still running"


def listed(client: FlaskClient, headers: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    """Every department the list answers, page by page: by the time a test looks,
    earlier ones have left more departments than one default page (50) holds."""
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        url = f"/api/departments?{query}&perPage=500&page={page}"
        body = client.get(url, headers=headers).get_json()
        rows += body["departments"]
        if page * body["perPage"] >= body["total"]:
            return rows
        page += 1


def listed_ids(client: FlaskClient, headers: dict[str, str], query: str = "") -> set[str]:
    return {row["departmentId"] for row in listed(client, headers, query)}


def submit(client: FlaskClient, headers: dict[str, str], payload: dict[str, Any]) -> str:
    response = client.post("/api/provision-department", json=payload, headers=headers)
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["provisioningId"])


def wait_for_job(job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    from app import config
    from app.domain.services.queries import job_view

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = job_view(uuid.UUID(job_id), config.current())
        assert view is not None
        if view["completedAt"]:
            return view
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s: {view}")


def wait_for_status(job_id: str, status: str, timeout: float = 60.0) -> dict[str, Any]:
    from app import config
    from app.domain.services.queries import job_view

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = job_view(uuid.UUID(job_id), config.current())
        assert view is not None
        if view["status"] == status:
            return view
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {status}: {view}")


def leftovers(stack: Stack, department_id: str) -> dict[str, Any]:
    """Everything of the department that exists in the real systems; empty means none."""
    env = stack.env
    found: dict[str, Any] = {
        "schema": probes.tenant_schema_exists(f"{TEST_DB}_tenants", department_id),
        "role": probes.tenant_role_exists(department_id),
        "oauth_client": probes.oauth_client_active(TEST_DB, department_id),
        "agent_pids": probes.agent_pids(department_id),
        "gateway_routes": probes.gateway_route_count(env["CADDY_ADMIN_URL"], department_id),
        "workflows": [
            w["name"]
            for w in probes.n8n_workflows(env["N8N_URL"], env["N8N_API_KEY"], department_id)
        ],
    }
    return {name: value for name, value in found.items() if value}
