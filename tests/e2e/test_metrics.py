"""/metrics (Prometheus, multiprocess) and GET /api/metrics (KPIs), on the real stack.

The jobs run in Celery pool processes; the samples are read from the gunicorn
API processes, so every assertion on a counter is also an assertion that the
multiprocess aggregation works.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import API_PORT, SLOT, TEST_DB, Stack, department_payload, make_token
from tests.e2e.conftest import submit, wait_for_job, wait_for_status
from tests.support import stack

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
TOKEN_API_PORT = API_PORT + 5
METRICS_TOKEN = "metrics-" + "t" * 32


def scrape(port: int = API_PORT, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def eventually(check: Callable[[], Samples], holds: Callable[[Samples], bool]) -> Samples:
    """Events are published right after the worker's commit, a moment after the
    job reads as finished: give the counters that moment."""
    deadline = time.monotonic() + 10
    while True:
        samples = check()
        if holds(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


@pytest.fixture(scope="module")
def token_api(live_stack: Stack) -> Iterator[stack.Service]:
    """A second API with METRICS_TOKEN set: it ran no job itself, so whatever
    it reports comes from the other processes' files."""
    env = {**live_stack.env, "METRICS_TOKEN": METRICS_TOKEN}
    service = stack.api_server(env, live_stack.log_dir, TOKEN_API_PORT, name=f"api-metrics{SLOT}")
    service.start()
    stack.wait_http(f"http://127.0.0.1:{TOKEN_API_PORT}/openapi.json")
    yield service
    service.stop()


def test_jobs_steps_retries_and_rollbacks_are_counted_across_processes(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str], faults: Any
) -> None:
    before = scrape()
    good, bad = department_payload(), department_payload()
    faults.arm(good["departmentId"], "database.create", mode="transient", times=1)
    faults.arm(bad["departmentId"], "gateway.create", mode="fail")

    assert wait_for_job(submit(client, admin_headers, good))["status"] == "completed"
    assert wait_for_job(submit(client, admin_headers, bad))["status"] == "failed"

    after = eventually(
        scrape,
        lambda s: (
            delta(before, s, "provisioning_jobs_total", kind="provision", outcome="failed") >= 1
        ),
    )
    jobs = {"kind": "provision"}
    assert delta(before, after, "provisioning_jobs_total", **jobs, outcome="completed") >= 1
    assert delta(before, after, "provisioning_jobs_total", **jobs, outcome="failed") >= 1
    assert delta(before, after, "provisioning_rollbacks_total", **jobs) >= 1
    assert delta(before, after, "provisioning_step_retries_total", **jobs, step="create_database")
    assert delta(
        before,
        after,
        "provisioning_compensations_total",
        step="deploy_workflows",
        status="rolled_back",
    )
    completed = {**jobs, "outcome": "completed"}
    assert delta(before, after, "provisioning_job_duration_seconds_count", **completed) >= 1
    assert delta(before, after, "provisioning_job_duration_seconds_sum", **completed) > 0
    step_ok = {**jobs, "step": "create_database", "status": "completed"}
    assert delta(before, after, "provisioning_step_duration_seconds_count", **step_ok) >= 1
    # The retried step waited out its backoff: its recorded duration includes it.
    step_failed = {**jobs, "step": "configure_gateway", "status": "failed"}
    assert delta(before, after, "provisioning_step_duration_seconds_count", **step_failed) >= 1
    assert value(after, "provisioning_jobs_in_flight", kind="provision") == 0


def test_every_api_process_reports_the_same_totals(live_stack: Stack) -> None:
    """gunicorn spreads the scrapes over its workers; all of them sum the same files."""
    totals = {
        value(scrape(), "provisioning_jobs_total", kind="provision", outcome="completed")
        for _ in range(8)
    }
    assert len(totals) == 1 and totals.pop() >= 1


def test_in_flight_gauge_is_read_from_the_database(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str], faults: Any
) -> None:
    payload = department_payload()
    faults.arm(payload["departmentId"], "container.create", mode="delay", seconds=4, times=1)
    job_id = submit(client, admin_headers, payload)
    wait_for_status(job_id, "deploying_container")

    assert value(scrape(), "provisioning_jobs_in_flight", kind="provision") >= 1
    wait_for_job(job_id)
    assert value(scrape(), "provisioning_jobs_in_flight", kind="provision") == 0


def test_metrics_token_guards_the_endpoint_and_sees_other_processes(
    live_stack: Stack, token_api: stack.Service
) -> None:
    url = f"http://127.0.0.1:{TOKEN_API_PORT}/metrics"
    assert requests.get(url, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert requests.get(url, headers=wrong, timeout=10).status_code == 401

    theirs = scrape(TOKEN_API_PORT, METRICS_TOKEN)
    ours = scrape()
    name, labels = "provisioning_jobs_total", {"kind": "provision", "outcome": "completed"}
    assert value(theirs, name, **labels) == value(ours, name, **labels) >= 1


def test_without_a_token_only_loopback_clients_may_scrape(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 403


def test_sweeper_actions_are_counted_when_a_crashed_worker_is_replaced(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str], faults: Any
) -> None:
    before = scrape()
    payload = department_payload()
    faults.arm(payload["departmentId"], "container.create", mode="delay", seconds=30, times=1)
    job_id = submit(client, admin_headers, payload)
    wait_for_status(job_id, "deploying_container")

    live_stack.restart_worker(crash=True)  # SIGKILL: no errbacks, no shutdown hooks

    assert wait_for_job(job_id, timeout=150)["status"] == "completed"
    after = eventually(
        scrape,
        lambda s: delta(before, s, "provisioning_sweeper_actions_total", action="resume") >= 1,
    )
    assert delta(before, after, "provisioning_sweeper_actions_total", action="resume") >= 1
    # What the killed processes had counted is still there.
    for key, old in before.items():
        if key[0] == "provisioning_jobs_total":
            assert after.get(key, 0.0) >= old


# --- GET /api/metrics


def _provision_rows(start: datetime, end: datetime) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT state, created_at, completed_at FROM provisioning_jobs "
            "WHERE kind = 'provision' AND created_at < %s AND coalesce(completed_at, %s) > %s",
            (end, end, start),
        )
        rows = cur.fetchall()
    conn.close()
    return rows


def _p95(values: list[float]) -> float:
    """percentile_cont: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    rank = 0.95 * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _peak(spans: list[tuple[datetime, datetime]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def expected_kpis(start: datetime, end: datetime) -> dict[str, Any]:
    """The same definitions as app/observability/kpis.py, computed in Python."""
    rows = _provision_rows(start, end)
    submitted = [r for r in rows if r[1] >= start]
    durations = [(c - s).total_seconds() for state, s, c in submitted if state == "COMPLETED"]
    count = {
        state: sum(1 for r in submitted if r[0] == state)
        for state in ("COMPLETED", "FAILED", "CANCELLED")
    }
    ended = sum(count.values())
    spans = [(max(s, start), min(c or end, end)) for _, s, c in rows]
    return {
        "total": len(submitted),
        "completed": count["COMPLETED"],
        "failed": count["FAILED"],
        "successRate": round(count["COMPLETED"] / (count["COMPLETED"] + count["FAILED"]), 4),
        "averageSeconds": round(sum(durations) / len(durations), 3),
        "p95Seconds": round(_p95(durations), 3),
        "rollbackRate": round((count["FAILED"] + count["CANCELLED"]) / ended, 4),
        "peakConcurrent": _peak(spans),
    }


def test_kpis_match_an_independent_computation(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    # Three at once, so that the peak is a real overlap.
    jobs = [submit(client, admin_headers, department_payload()) for _ in range(3)]
    for job_id in jobs:
        wait_for_job(job_id)

    response = client.get("/api/metrics?window=2h", headers=admin_headers)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    start, end = (datetime.fromisoformat(body[k].replace("Z", "+00:00")) for k in ("from", "to"))
    assert end - start == timedelta(hours=2)
    assert abs((datetime.now(UTC) - end).total_seconds()) < 30
    kpis, expected = body["provisioning"], expected_kpis(start, end)
    for name, wanted in expected.items():
        assert kpis[name] == pytest.approx(wanted, abs=1e-3), name
    assert kpis["peakConcurrent"] >= 3
    assert kpis["inFlight"] == 0
    assert kpis["p95Seconds"] >= kpis["averageSeconds"] > 0


def test_kpis_refuse_bad_windows_and_non_admins(app: Flask, client: FlaskClient) -> None:
    admin = {"Authorization": f"Bearer {make_token(app)}"}
    department = {"Authorization": f"Bearer {make_token(app, 'department', 'zt-x')}"}
    assert client.get("/api/metrics").status_code == 401
    assert client.get("/api/metrics", headers=department).status_code == 403
    for bad in ("24", "0h", "367d", "1y", "-1h"):
        response = client.get(f"/api/metrics?window={bad}", headers=admin)
        assert response.status_code == 422, bad
        assert "window" in response.get_json()["errors"]["query"]
    default = client.get("/api/metrics", headers=admin)
    assert default.status_code == 200 and default.get_json()["window"] == "24h"
