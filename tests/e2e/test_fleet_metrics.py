"""The metrics dashboards expect, scraped from the running API (gunicorn, two
workers, multiprocess mode): HTTP rate/errors/duration per route, departments
by status, webhook attempts by outcome, queue depth and build info."""

from __future__ import annotations

import time

import psycopg2
import requests
from flask.testing import FlaskClient

from tests.conftest import API_PORT, TEST_DB, Stack, department_payload
from tests.e2e.conftest import submit, wait_for_job
from tests.e2e.test_metrics import Samples, delta, scrape, value

BASE_URL = f"http://127.0.0.1:{API_PORT}"
STATUS_ROUTE = "/api/provision-status/<uuid:provisioning_id>"


def test_http_requests_are_counted_per_route_and_status(
    live_stack: Stack, admin_headers: dict[str, str]
) -> None:
    before = scrape()
    missing = f"{BASE_URL}/api/provision-status/00000000-0000-0000-0000-000000000000"
    for _ in range(3):
        assert requests.get(missing, headers=admin_headers, timeout=10).status_code == 404
    requests.get(f"{BASE_URL}/no/such/{'x' * 8}", timeout=10)
    after = scrape()
    labels = {"method": "GET", "route": STATUS_ROUTE}
    assert delta(before, after, "http_requests_total", status="404", **labels) == 3
    assert delta(before, after, "http_request_duration_seconds_count", **labels) == 3
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert delta(before, after, "http_requests_total", **unmatched) == 1
    assert not any("xxxxxxxx" in str(key) for key in after)  # raw paths never become labels


def test_departments_queue_and_build_info(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    job = submit(client, admin_headers, department_payload())
    assert wait_for_job(job)["status"] == "completed"
    # Other departments may change status meanwhile (the drift sweep runs every
    # second here), so compare with the database at the moment of the scrape
    # rather than expect a delta of exactly one.
    after, counts = _scrape_matching_the_database()
    assert counts.get("ACTIVE", 0) >= 1
    assert {s: value(after, "provisioning_departments", status=s) for s in counts} == counts
    assert ("celery_queue_length", frozenset({("queue", "celery")})) in after
    build = [key for key in after if key[0] == "provisioning_build_info"]
    assert len(build) == 1 and value(after, build[0][0], **dict(build[0][1])) == 1


def _departments_by_status() -> dict[str, float]:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status, count(*) FROM departments GROUP BY status")
            return {str(status): float(count) for status, count in cur.fetchall()}
    finally:
        conn.close()


def _scrape_matching_the_database() -> tuple[Samples, dict[str, float]]:
    """A scrape taken while the database stood still (same counts before and after)."""
    for _ in range(20):
        counts = _departments_by_status()
        after = scrape()
        if _departments_by_status() == counts:
            return after, counts
        time.sleep(0.5)
    raise AssertionError("department statuses kept changing for 10 s")


def test_webhook_attempts_are_counted_by_outcome(live_stack: Stack) -> None:
    """A delivery to a metadata address is refused at its first attempt (by the real
    worker); the scrape counts it under outcome="refused"."""
    import uuid
    from datetime import UTC, datetime

    from app.domain.services import webhooks
    from app.persistence.database import db
    from app.persistence.webhook_models import WebhookDelivery

    before = scrape()
    with db.transaction() as session:
        row = WebhookDelivery(
            event_id=uuid.uuid4(),
            event_type="job.state_changed",
            job_id=uuid.uuid4(),
            department_id="zz-metrics",
            url="http://169.254.169.254/latest/",
            payload={"state": "VALIDATING"},
            status="pending",
            attempts=0,
            next_attempt_at=datetime.now(UTC),
        )
        session.add(row)
        session.flush()
        delivery_id = row.id
    webhooks.queue(delivery_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with db.transaction() as session:
            if session.get(WebhookDelivery, delivery_id).status == "refused":  # type: ignore[union-attr]
                break
        time.sleep(0.3)
    after = scrape()
    assert delta(before, after, "webhook_delivery_attempts_total", outcome="refused") == 1
