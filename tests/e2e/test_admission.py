"""Jobs beyond MAX_ACTIVE_JOBS wait their turn, and waiting costs them none of
their MAX_PROVISIONING_TIME (issue 16: a burst must not become mass rollbacks)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.domain.states import TERMINAL_STATES
from app.persistence.database import db
from app.persistence.models import ProvisioningJob
from tests.conftest import Stack, department_payload
from tests.e2e.conftest import leftovers, submit, wait_for_job
from tests.e2e.test_faults import deprovision_cleanly
from tests.e2e.test_metrics import scrape, value
from tests.e2e.test_resilience import limits

BUDGET = 30  # seconds of MAX_PROVISIONING_TIME for both jobs


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _running_jobs() -> int:
    with db.transaction() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(ProvisioningJob)
                .where(
                    ProvisioningJob.admitted_at.is_not(None),
                    ProvisioningJob.state.not_in([s.value for s in TERMINAL_STATES]),
                )
            )
            or 0
        )


def _wait_until_nothing_runs(timeout: float = 120) -> None:
    """One place only means something if no earlier test's job holds it."""
    deadline = time.monotonic() + timeout
    while _running_jobs() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _running_jobs() == 0, "jobs of earlier tests still running"


def _status(client: FlaskClient, headers: dict[str, str], job: str) -> dict[str, Any]:
    response = client.get(f"/api/provision-status/{job}", headers=headers)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def test_a_job_past_max_active_jobs_waits_its_turn_with_its_deadline_not_ticking(
    live_stack: Stack,
    main_beat_paused: None,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: Any,
) -> None:
    first, second = department_payload(), department_payload()
    # The first job holds the only place until its own deadline ends it.
    faults.arm(first["departmentId"], "workflows.create", mode="delay", seconds=90)
    _wait_until_nothing_runs()

    with limits(step_timeout=120, job_timeout=BUDGET, MAX_ACTIVE_JOBS=1):
        first_job = submit(client, admin_headers, first)
        submitted = datetime.now(UTC)
        second_job = submit(client, admin_headers, second)

    waiting = _status(client, admin_headers, second_job)
    assert waiting["status"] == "pending", waiting
    assert waiting["queuePosition"] == 1, waiting
    assert waiting["currentStep"] == "Waiting for a place (next to start)"
    assert all(s["status"] == "pending" and s["startedAt"] is None for s in waiting["steps"])
    assert _status(client, admin_headers, first_job)["queuePosition"] is None
    assert value(scrape(), "provisioning_jobs_waiting", kind="provision") == 1

    ended = wait_for_job(first_job, timeout=150)
    assert ended["status"] == "failed", ended
    assert f"MAX_PROVISIONING_TIME={BUDGET}s" in ended["error"]["message"]

    view = wait_for_job(second_job, timeout=150)
    assert view["status"] == "completed", view
    started = _moment(view["steps"][0]["startedAt"])
    # It started only when the first ended (the worker handed the place on),
    # after its own submission plus the whole budget, and still completed.
    assert started >= _moment(ended["completedAt"])
    assert started - submitted > timedelta(seconds=BUDGET)
    assert _status(client, admin_headers, second_job)["queuePosition"] is None
    assert any("admitted after waiting" in line for line in view["logs"]), view["logs"]
    assert leftovers(live_stack, first["departmentId"]) == {}
    deprovision_cleanly(live_stack, client, admin_headers, second["departmentId"])
