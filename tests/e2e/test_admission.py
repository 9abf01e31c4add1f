"""Jobs beyond MAX_ACTIVE_JOBS wait their turn, and waiting costs them none of
their MAX_PROVISIONING_TIME (issue 16: a burst must not become mass rollbacks).

Every process that admits jobs (the API on submit, the worker when a job ends,
beat's sweeper) must share the setting, so the jobs run on a private stack
with MAX_ACTIVE_JOBS=1, and the session's beat is paused: its sweeper shares
the state database and would admit with the session's own capacity.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from app.providers.faults import FaultInjector
from tests.conftest import API_PORT, SLOT, Stack, department_payload
from tests.e2e.conftest import leftovers, wait_for_job, wait_until_no_job_runs
from tests.e2e.test_faults import deprovision_cleanly
from tests.e2e.test_metrics import scrape, value
from tests.support.private_stack import PrivateStack, private_stack

BUDGET = 30  # seconds of MAX_PROVISIONING_TIME for every job
ONE_PLACE = {"MAX_ACTIVE_JOBS": "1", "MAX_PROVISIONING_TIME": f"{BUDGET}s", "STEP_TIMEOUT": "120s"}


@pytest.fixture(scope="module")
def one_place(live_stack: Stack, test_env: dict[str, str], run_dir: Path) -> Iterator[PrivateStack]:
    log_dir = run_dir / "one-place-stack"
    with private_stack(test_env, log_dir, 6400 + SLOT, API_PORT + 8, ONE_PLACE) as stack:
        yield stack


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Api:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers

    def submit(self, payload: dict[str, Any]) -> str:
        response = requests.post(
            f"{self.url}/api/provision-department", json=payload, headers=self.headers, timeout=30
        )
        assert response.status_code == 202, response.text
        return str(response.json()["provisioningId"])

    def status(self, job: str) -> dict[str, Any]:
        response = requests.get(
            f"{self.url}/api/provision-status/{job}", headers=self.headers, timeout=30
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def cancel(self, job: str) -> None:
        response = requests.post(
            f"{self.url}/api/provision-status/{job}/cancel", headers=self.headers, timeout=30
        )
        assert response.status_code == 202, response.text


def test_a_job_past_max_active_jobs_waits_its_turn_with_its_deadline_not_ticking(
    one_place: PrivateStack,
    main_beat_paused: None,
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    api = Api(one_place.api_url, admin_headers)
    first, second, third = department_payload(), department_payload(), department_payload()
    # The first job holds the only place until its own deadline ends it.
    FaultInjector(one_place.redis_url).arm(
        first["departmentId"], "workflows.create", mode="delay", seconds=90
    )
    wait_until_no_job_runs()

    first_job = api.submit(first)
    submitted = datetime.now(UTC)
    second_job, third_job = api.submit(second), api.submit(third)

    waiting = api.status(second_job)
    assert waiting["status"] == "pending", waiting
    assert waiting["queuePosition"] == 1, waiting
    assert waiting["currentStep"] == "Waiting for a place (next to start)"
    assert all(s["status"] == "pending" and s["startedAt"] is None for s in waiting["steps"])
    assert api.status(first_job)["queuePosition"] is None
    assert api.status(third_job)["queuePosition"] == 2
    assert value(scrape(), "provisioning_jobs_waiting", kind="provision") == 2

    # A waiting job cancelled is let in at once and ends, without waiting its turn.
    api.cancel(third_job)
    cancelled = wait_for_job(third_job, timeout=60)
    assert cancelled["status"] == "cancelled", cancelled
    assert all(s["status"] == "pending" for s in cancelled["steps"]), cancelled["steps"]
    assert api.status(first_job)["completedAt"] is None
    assert api.status(second_job)["queuePosition"] == 1

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
    assert api.status(second_job)["queuePosition"] is None
    assert any("admitted after waiting" in line for line in view["logs"]), view["logs"]
    for payload in (first, third):
        assert leftovers(live_stack, payload["departmentId"]) == {}
    deprovision_cleanly(live_stack, client, admin_headers, second["departmentId"])
