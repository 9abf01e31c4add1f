"""Live progress: the SSE stream of a real job, its resume, its auth, and the ETA."""

from __future__ import annotations

import statistics
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
from flask import Flask

from tests.conftest import API_PORT, Stack, department_payload, make_token
from tests.e2e.conftest import wait_for_job
from tests.support.sse import Event, open_stream, read_until_end

API = f"http://127.0.0.1:{API_PORT}"
PROVISION_STATES = [
    "VALIDATING",
    "CREATING_DATABASE",
    "CREATING_OAUTH",
    "DEPLOYING_CONTAINER",
    "DEPLOYING_WORKFLOWS",
    "CONFIGURING_GATEWAY",
    "VALIDATING_DEPLOYMENT",
    "COMPLETED",
]


def events_url(job_id: str) -> str:
    return f"{API}/api/provision-status/{job_id}/events"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ticket_for(job_id: str, token: str) -> str:
    response = requests.post(f"{events_url(job_id)}/ticket", headers=bearer(token), timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return str(response.json()["ticket"])


@pytest.fixture(scope="module")
def followed_job(live_stack: Stack, app: Flask) -> dict[str, Any]:
    """One department provisioned through the API while its stream is read live."""
    from app.providers.faults import FaultInjector

    token = make_token(app)
    payload = department_payload(workflows=["email"])
    # A slow container step makes "as they happen" measurable.
    injector = FaultInjector(app.extensions["celery"].conf.broker_url)
    injector.arm(payload["departmentId"], "container.create", mode="delay", seconds=3, times=1)
    response = requests.post(
        f"{API}/api/provision-department", json=payload, headers=bearer(token), timeout=30
    )
    assert response.status_code == 202, response.text
    job_id = str(response.json()["provisioningId"])
    events = read_until_end(open_stream(events_url(job_id), headers=bearer(token)))
    injector.clear(payload["departmentId"])
    return {"job_id": job_id, "department_id": payload["departmentId"], "events": events}


def test_events_arrive_live_in_order_and_end_with_the_final_status(
    followed_job: dict[str, Any],
) -> None:
    events: list[Event] = followed_job["events"]
    view = wait_for_job(followed_job["job_id"])
    assert view["status"] == "completed", view

    # Ordered by their stream ids, and delivered as the job ran rather than at its end.
    keys = [e.sort_key for e in events]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert events[-1].received_at - events[0].received_at > 2.5

    states = [e.data["data"]["state"] for e in events if e.event == "state"]
    assert states == PROVISION_STATES
    end = events[-1]
    assert end.event == "end" and end.id is not None
    assert end.data["status"] == "completed" and end.data["job_id"] == followed_job["job_id"]

    # Each step went in_progress -> completed, and the log is the job's log, in order.
    per_step: dict[str, list[str]] = defaultdict(list)
    for e in events:
        if e.event == "step":
            per_step[e.data["data"]["step"]].append(e.data["data"]["status"])
    assert set(per_step) == {s["name"] for s in view["steps"]}
    assert all(statuses[-1] == "completed" for statuses in per_step.values()), per_step
    streamed_log = [e.data["data"]["message"] for e in events if e.event == "log"]
    assert streamed_log == [line.split("] ", 2)[2] for line in view["logs"]]
    # The end follows the commit's closing log line.
    assert events[-2].event == "log" and "is ACTIVE" in events[-2].data["data"]["message"]


def test_last_event_id_resumes_after_what_was_seen(
    followed_job: dict[str, Any], app: Flask
) -> None:
    events: list[Event] = followed_job["events"]
    token = make_token(app)
    seen = len(events) // 2
    resumed = read_until_end(
        open_stream(
            events_url(followed_job["job_id"]),
            headers={**bearer(token), "Last-Event-ID": str(events[seen - 1].id)},
        )
    )
    assert [e.id for e in resumed] == [e.id for e in events[seen:]]

    # A fresh EventSource (new ticket) resumes through the query instead.
    ticket = ticket_for(followed_job["job_id"], token)
    resumed = read_until_end(
        open_stream(
            events_url(followed_job["job_id"]),
            params={"ticket": ticket, "lastEventId": str(events[-3].id)},
        )
    )
    assert [e.id for e in resumed] == [e.id for e in events[-2:]]


def test_resuming_after_the_end_ends_at_once(followed_job: dict[str, Any], app: Flask) -> None:
    last = followed_job["events"][-1]
    resumed = read_until_end(
        open_stream(
            events_url(followed_job["job_id"]),
            headers={**bearer(make_token(app)), "Last-Event-ID": str(last.id)},
        ),
        limit=10,
    )
    assert [(e.event, e.data["status"]) for e in resumed] == [("end", "completed")]


def test_stream_access_follows_the_status_rules(followed_job: dict[str, Any], app: Flask) -> None:
    job_id, own = followed_job["job_id"], followed_job["department_id"]
    other = make_token(app, role="department", department_id="zz-someone-else")
    mine = make_token(app, role="department", department_id=own)

    assert open_stream(events_url(job_id)).status_code == 401
    assert open_stream(events_url(job_id), headers=bearer(other)).status_code == 403
    ticket_url = f"{events_url(job_id)}/ticket"
    assert requests.post(ticket_url, headers=bearer(other), timeout=10).status_code == 403
    assert open_stream(events_url(str(uuid.uuid4())), headers=bearer(mine)).status_code == 404

    # The department's own token may follow its job, with the header or a ticket.
    events = read_until_end(open_stream(events_url(job_id), headers=bearer(mine)))
    assert events[-1].event == "end"
    ticket = ticket_for(job_id, mine)
    events = read_until_end(open_stream(events_url(job_id), params={"ticket": ticket}))
    assert events[-1].event == "end"


def test_bad_expired_or_misused_tickets_are_refused(
    followed_job: dict[str, Any], app: Flask
) -> None:
    from app.api import stream_tickets

    job_id = followed_job["job_id"]
    claims = {"email": "ops@example.com", "role": "admin"}
    with app.app_context():
        expired, _ = stream_tickets.issue(job_id, followed_job["department_id"], claims, ttl=-1)
        other_job, _ = stream_tickets.issue(str(uuid.uuid4()), "zz-x", claims)
    good = ticket_for(job_id, make_token(app))

    for ticket in ("not-a-ticket", good[:-2] + "xx", expired, other_job):
        response = open_stream(events_url(job_id), params={"ticket": ticket})
        assert response.status_code == 401, (ticket, response.text)
        assert response.json()["code"] == 401
    # A ticket is no bearer token.
    status = requests.get(f"{API}/api/provision-status/{job_id}", headers=bearer(good), timeout=10)
    assert status.status_code == 401


def test_latest_job_names_the_departments_job(followed_job: dict[str, Any], app: Flask) -> None:
    department_id = followed_job["department_id"]
    response = requests.get(
        f"{API}/api/departments/{department_id}/latest-job",
        headers=bearer(make_token(app)),
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["provisioningId"] == followed_job["job_id"]
    assert response.json()["eventsUrl"] == events_url(followed_job["job_id"])
    other = make_token(app, role="department", department_id="zz-someone-else")
    assert (
        requests.get(
            f"{API}/api/departments/{department_id}/latest-job", headers=bearer(other), timeout=10
        ).status_code
        == 403
    )


def test_a_stream_is_bounded_in_time(live_stack: Stack, app: Flask) -> None:
    from app.domain.services.live import JobBrief
    from app.observability import sse

    running = JobBrief(str(uuid.uuid4()), "zz-none", "provision", "CREATING_DATABASE", None)
    frames = list(sse.follow(running.job_id, "0", lambda: running, max_seconds=1.0))
    assert frames[0].startswith("retry:")
    assert frames[-1].startswith(": closing after")
    assert all(f.startswith(":") for f in frames[1:])


def test_estimate_uses_the_median_of_measured_step_durations(
    followed_job: dict[str, Any], app: Flask
) -> None:
    from app.domain.services import estimates
    from app.persistence.database import db
    from app.persistence.models import JobStep

    with db.transaction() as session:
        measured = estimates.median_step_seconds(session.connection())
        rows = session.query(JobStep).filter(JobStep.status == "completed").all()
        durations: dict[tuple[str, str], list[tuple[Any, float]]] = defaultdict(list)
        for row in rows:
            if row.started_at and row.finished_at:
                seconds = (row.finished_at - row.started_at).total_seconds()
                durations[(row.name, row.action)].append((row.finished_at, seconds))
    expected = {
        key: statistics.median(s for _, s in sorted(values, reverse=True)[:20])
        for key, values in durations.items()
    }
    assert set(measured) == set(expected) and ("deploy_container", "create") in measured
    for key, value in expected.items():
        assert measured[key] == pytest.approx(value, abs=1e-3)


def test_estimate_of_a_running_job_is_in_the_future(live_stack: Stack, app: Flask) -> None:
    from app import config
    from app.domain.services.queries import job_view
    from app.persistence.models import utcnow

    token = make_token(app)
    response = requests.post(
        f"{API}/api/provision-department",
        json=department_payload(workflows=["email"]),
        headers=bearer(token),
        timeout=30,
    )
    job_id = uuid.UUID(str(response.json()["provisioningId"]))
    view = job_view(job_id, config.current())
    assert view is not None and view["estimatedCompletion"]
    if not view["completedAt"]:
        eta = datetime.fromisoformat(view["estimatedCompletion"].replace("Z", "+00:00"))
        assert utcnow() - timedelta(seconds=1) < eta < utcnow() + timedelta(minutes=5)
    assert wait_for_job(str(job_id))["status"] == "completed"
