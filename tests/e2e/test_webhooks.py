"""Webhooks, end to end: real jobs, the real Celery worker, a real HTTP receiver.

The receiver listens on 127.0.0.1, which WEBHOOK_ALLOW_PRIVATE must allow, so
this module restarts the stack's worker with the webhook settings it needs
(and puts the worker back as it was afterwards).
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Stack, department_payload, make_token
from tests.e2e.conftest import submit, wait_for_job

# Two secrets, as during a key rotation: a Standard Webhooks one and a plain one.
NEW_SECRET = "whsec_" + base64.b64encode(b"n" * 32).decode()
OLD_SECRET = "test-webhook-secret-" + "w" * 32
WEBHOOK_SECRET = f"{NEW_SECRET} {OLD_SECRET}"
WORKER_ENV = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "WEBHOOK_RETRY_BASE": "0.3", "WEBHOOK_TIMEOUT": "3"}
STATE_LINE = re.compile(r"state (\w+) -> (\w+)")


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


class Receiver:
    """A webhook receiver on loopback that answers 500 to its first ``fail_first``
    requests and 204 after that."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/hooks/orchestrator?source=test"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    status = 500 if len(receiver.requests) < receiver.fail_first else 204
                    receiver.requests.append(
                        Received(dict(self.headers.items()), body, time.time(), status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        return Handler

    def delivered(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.answered == 204]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class WebhookWorker:
    """Restarts the stack's worker (and reloads this process's settings) with
    the webhook settings a test needs; ``restore`` undoes it."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.allow_private: bool | None = None
        keys = [*WORKER_ENV, "WEBHOOK_ALLOW_PRIVATE"]
        self._saved = {k: (stack.env.get(k), os.environ.get(k)) for k in keys}

    def use(self, allow_private: bool) -> None:
        if self.allow_private is not allow_private:
            env = {**WORKER_ENV, "WEBHOOK_ALLOW_PRIVATE": "1" if allow_private else "0"}
            self.stack.env.update(env)
            os.environ.update(env)
            self.stack.restart_worker()
            self.allow_private = allow_private
        _reload_settings()

    def restore(self) -> None:
        for key, (stack_value, process_value) in self._saved.items():
            _put(self.stack.env, key, stack_value)
            _put(os.environ, key, process_value)
        self.stack.restart_worker()
        _reload_settings()


def _put(mapping: Any, key: str, value: str | None) -> None:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value


def _reload_settings() -> None:
    from app import config

    config.install(config.load_settings())


@pytest.fixture(scope="module")
def webhook_worker(live_stack: Stack) -> Iterator[WebhookWorker]:
    worker = WebhookWorker(live_stack)
    yield worker
    worker.restore()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")


def deliveries(client: FlaskClient, headers: dict[str, str], **query: Any) -> dict[str, Any]:
    response = client.get("/api/webhooks/deliveries", query_string=query, headers=headers)
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def finished_deliveries(
    client: FlaskClient, headers: dict[str, str], job_id: str, count: int
) -> list[dict[str, Any]]:
    """The job's deliveries, once there are ``count`` and none is still open."""

    def done() -> list[dict[str, Any]] | None:
        rows = deliveries(client, headers, provisioningId=job_id, perPage=500)["deliveries"]
        finished = len(rows) == count and all(
            r["status"] not in ("pending", "retrying") for r in rows
        )
        return rows if finished else None

    return list(wait_until(done, 60, f"{count} finished deliveries of job {job_id}"))


def state_changes(view: dict[str, Any]) -> list[tuple[str, str]]:
    """The transitions the job made, from its own log (the source of truth)."""
    return [m.groups() for line in view["logs"] if (m := STATE_LINE.search(line))]  # type: ignore[misc]


def assert_signed_and_fresh(received: Received) -> None:
    """As a receiver would check: with the standardwebhooks library, under either
    secret of the rotation; and the deprecated header with the first secret."""
    from standardwebhooks import Webhook, WebhookVerificationError

    from app.domain.webhook_signing import verify_legacy

    headers = received.headers
    for secret in (NEW_SECRET, OLD_SECRET.encode()):
        assert Webhook(secret).verify(received.body, headers) == received.event
    with pytest.raises(WebhookVerificationError):
        Webhook(b"some-other-secret-" + b"x" * 20).verify(received.body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(NEW_SECRET).verify(received.body + b" ", headers)
    assert headers["webhook-id"] == received.event["id"]
    stamp = int(headers["webhook-timestamp"])
    assert received.at - 30 <= stamp <= received.at + 1
    assert len(headers["webhook-signature"].split(" ")) == 2

    legacy = headers["X-Webhook-Signature"]
    key = NEW_SECRET.encode()
    assert verify_legacy(key, legacy, received.body, tolerance=30, now=received.at), legacy
    assert not verify_legacy(key, legacy, received.body + b" ", now=received.at)
    assert not verify_legacy(key, legacy, received.body, now=received.at + 3600)


# --- the address policy, on its own ---------------------------------------------


@pytest.mark.parametrize(
    ("url", "allow_private", "refused"),
    [
        ("http://169.254.169.254/latest/meta-data/", True, "metadata"),
        ("http://[fd00:ec2::254]/", True, "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", True, "metadata"),
        ("http://2852039166/", True, "metadata"),  # 169.254.169.254 as one number
        ("http://[::ffff:169.254.169.254]/", True, "metadata"),
        ("http://169.254.10.1/", True, "link-local"),
        ("http://[fe80::1]/", True, "link-local"),
        ("http://127.0.0.1/", False, "loopback or private"),
        ("http://0x7f.1/", False, "loopback or private"),
        ("http://10.1.2.3/", False, "loopback or private"),
        ("http://[::1]/", False, "loopback or private"),
        ("ftp://example.com/", True, "http or https"),
        ("http://127.0.0.1/", True, None),
        ("https://hooks.example.com/x", False, None),
    ],
)
def test_address_policy(url: str, allow_private: bool, refused: str | None) -> None:
    from app.domain.webhook_security import url_refusal

    reason = url_refusal(url, allow_private)
    assert (reason is None) if refused is None else (refused in (reason or "")), reason


# --- the real thing ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]:8080/hook",
        "http://metadata.google.internal/",
        "http://[fd00:ec2::254]/",
        "http://2852039166/",
        "http://127.0.0.1:9/hook",  # loopback, with WEBHOOK_ALLOW_PRIVATE off
    ],
)
def test_forbidden_callback_url_is_a_422_and_creates_nothing(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str], url: str
) -> None:
    from app import config

    config.install(config.current().model_copy(update={"WEBHOOK_ALLOW_PRIVATE": False}))
    payload = department_payload(callbackUrl=url)

    response = client.post("/api/provision-department", json=payload, headers=admin_headers)

    assert response.status_code == 422, response.get_json()
    assert "callbackUrl" in response.get_json()["errors"]["json"]
    listed = client.get("/api/departments?perPage=500", headers=admin_headers).get_json()
    assert payload["departmentId"] not in {d["departmentId"] for d in listed["departments"]}


def test_every_state_change_is_delivered_in_order_signed_and_fresh(
    webhook_worker: WebhookWorker,
    receiver: Receiver,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    webhook_worker.use(allow_private=True)
    payload = department_payload(callbackUrl=receiver.url())
    department_id = payload["departmentId"]

    job_id = submit(client, admin_headers, payload)
    view = wait_for_job(job_id, 180)
    assert view["status"] == "completed", view
    expected = state_changes(view)
    assert expected[0][0] == "PENDING" and expected[-1][1] == "COMPLETED"
    assert len(expected) >= 8  # PENDING, VALIDATING, five components, VALIDATING_DEPLOYMENT

    wait_until(lambda: len(receiver.delivered()) >= len(expected), 30, "every event")
    events = [r.event for r in receiver.delivered()]
    assert [(e["previousState"], e["state"]) for e in events] == expected
    for received, event in zip(receiver.delivered(), events, strict=True):
        assert_signed_and_fresh(received)
        assert received.headers["X-Webhook-Id"] == event["id"]
        assert received.headers["Content-Type"] == "application/json"
        assert (event["type"], event["kind"]) == ("job.state_changed", "provision")
        assert (event["provisioningId"], event["departmentId"]) == (job_id, department_id)
        assert abs(datetime.fromisoformat(event["time"]).timestamp() - received.at) < 30
    assert len({e["id"] for e in events}) == len(events)

    rows = finished_deliveries(client, admin_headers, job_id, len(expected))
    assert {(r["status"], r["attempts"]) for r in rows} == {("delivered", 1)}
    assert all(r["attemptLog"][0]["address"] == "127.0.0.1" for r in rows)

    # Other kinds of job notify the same way: deprovisioning cleans up, too.
    response = client.delete(f"/api/deprovision/{department_id}", headers=admin_headers)
    assert response.status_code == 202, response.get_json()
    removal = str(response.get_json()["provisioningId"])
    assert wait_for_job(removal, 120)["status"] == "completed"
    wait_until(lambda: len(receiver.delivered()) >= len(expected) + 2, 30, "deprovision events")
    tail = [r.event for r in receiver.delivered()[len(expected) :]]
    assert [(e["kind"], e["previousState"], e["state"]) for e in tail] == [
        ("deprovision", "PENDING", "DEPROVISIONING"),
        ("deprovision", "DEPROVISIONING", "COMPLETED"),
    ]


def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(
    webhook_worker: WebhookWorker,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: Any,
) -> None:
    webhook_worker.use(allow_private=True)
    with Receiver(fail_first=2) as receiver:
        payload = department_payload(callbackUrl=receiver.url())
        # A job that fails fast still changes state several times.
        faults.arm(payload["departmentId"], "database.create", mode="fail")
        job_id = submit(client, admin_headers, payload)
        view = wait_for_job(job_id, 120)
        assert view["status"] == "failed"
        expected = state_changes(view)

        rows = finished_deliveries(client, admin_headers, job_id, len(expected))

        first, rest = rows[0], rows[1:]
        assert (first["status"], first["attempts"]) == ("delivered", 3)
        log = first["attemptLog"]
        assert [(a["outcome"], a["statusCode"]) for a in log] == [
            ("http_error", 500),
            ("http_error", 500),
            ("delivered", 204),
        ]
        times = [datetime.fromisoformat(a["at"]).timestamp() for a in log]
        gaps = [later - earlier for earlier, later in pairwise(times)]
        assert gaps[0] >= 0.2 and gaps[1] > gaps[0], gaps  # 0.3 s, then 0.6 s (+-20%)
        assert all((r["status"], r["attempts"]) == ("delivered", 1) for r in rest)
        # The later events waited for the first: the receiver still heard them in order.
        events = [r.event for r in receiver.delivered()]
        assert [(e["previousState"], e["state"]) for e in events] == expected
        assert [r.event["id"] for r in receiver.requests[:3]] == [first["eventId"]] * 3


def test_a_metadata_address_is_refused_at_delivery_even_with_private_allowed(
    webhook_worker: WebhookWorker, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    """Rows as if a URL had slipped past the request check (or WEBHOOK_URLS)."""
    from app.domain.services import webhooks
    from app.persistence.database import db
    from app.persistence.webhook_models import WebhookDelivery

    webhook_worker.use(allow_private=True)
    job_id = uuid.uuid4()
    urls = ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]:9/hook"]
    with db.transaction() as session:
        rows = [
            WebhookDelivery(
                event_id=uuid.uuid4(),
                event_type="job.state_changed",
                job_id=job_id,
                department_id="zz-refusal",
                url=url,
                payload={"state": "VALIDATING"},
                status="pending",
                attempts=0,
                next_attempt_at=datetime.now(UTC),
            )
            for url in urls
        ]
        session.add_all(rows)
        session.flush()
        ids = [r.id for r in rows]
    for delivery_id in ids:
        webhooks.queue(delivery_id)

    found = finished_deliveries(client, admin_headers, str(job_id), 2)

    for row in found:
        assert (row["status"], row["attempts"]) == ("refused", 1), row
        attempt = row["attemptLog"][0]
        assert attempt["outcome"] == "refused" and attempt["address"] is None
    assert "metadata" in found[0]["lastError"] and "link-local" in found[1]["lastError"]


def test_a_lost_message_is_sent_by_the_sweep_and_duplicates_send_once(
    webhook_worker: WebhookWorker,
    receiver: Receiver,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    from app.domain.services import webhooks
    from app.persistence.database import db
    from app.persistence.webhook_models import WebhookDelivery

    webhook_worker.use(allow_private=True)
    job_id = uuid.uuid4()
    with db.transaction() as session:
        # Recorded two minutes ago, its task message never sent (Redis lost it).
        row = WebhookDelivery(
            event_id=uuid.uuid4(),
            event_type="job.state_changed",
            job_id=job_id,
            department_id="zz-lost",
            url=receiver.url(),
            payload={"id": "lost-event", "state": "VALIDATING"},
            status="pending",
            attempts=0,
            next_attempt_at=datetime.now(UTC) - timedelta(minutes=2),
        )
        session.add(row)
        session.flush()
        delivery_id = row.id

    assert delivery_id in webhooks.redeliver_overdue()
    webhooks.queue(delivery_id)  # and two stray duplicates of the message
    webhooks.queue(delivery_id)

    (found,) = finished_deliveries(client, admin_headers, str(job_id), 1)
    time.sleep(1)  # room for a duplicate to (wrongly) send again
    assert (found["status"], found["attempts"]) == ("delivered", 1)
    assert [r.event["id"] for r in receiver.requests] == ["lost-event"]


def test_deliveries_are_for_admins_only_filtered_and_paginated(
    app: Flask, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    from app.persistence.database import db
    from app.persistence.webhook_models import WebhookDelivery

    mine, other = f"zw{uuid.uuid4().hex[:8]}", f"zw{uuid.uuid4().hex[:8]}"
    with db.transaction() as session:
        for department_id, count in ((mine, 3), (other, 1)):
            session.add_all(
                WebhookDelivery(
                    event_id=uuid.uuid4(),
                    event_type="job.state_changed",
                    job_id=uuid.uuid4(),
                    department_id=department_id,
                    url="https://hooks.example.com/x",
                    payload={"state": f"S{n}"},
                    status="delivered",
                    attempts=1,
                    next_attempt_at=datetime.now(UTC),
                )
                for n in range(count)
            )

    page1 = deliveries(client, admin_headers, departmentId=mine, perPage=2, page=1)
    page2 = deliveries(client, admin_headers, departmentId=mine, perPage=2, page=2)
    assert (page1["total"], len(page1["deliveries"]), len(page2["deliveries"])) == (3, 2, 1)
    states = [d["state"] for d in page1["deliveries"] + page2["deliveries"]]
    assert states == ["S0", "S1", "S2"]
    assert {d["departmentId"] for d in page1["deliveries"]} == {mine}

    own = {"Authorization": f"Bearer {make_token(app, 'department', mine)}"}
    assert client.get("/api/webhooks/deliveries", headers=own).status_code == 403
    scoped = client.get(f"/api/webhooks/deliveries?departmentId={mine}", headers=own)
    assert scoped.status_code == 403
    assert client.get("/api/webhooks/deliveries").status_code == 401


def test_a_name_resolving_to_loopback_is_refused_when_private_is_not_allowed(
    webhook_worker: WebhookWorker,
    receiver: Receiver,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: Any,
) -> None:
    """The request check cannot know what a name resolves to; delivery does, and
    refuses before connecting (the receiver hears nothing)."""
    webhook_worker.use(allow_private=False)
    payload = department_payload(callbackUrl=receiver.url(host="localhost"))
    faults.arm(payload["departmentId"], "database.create", mode="fail")

    job_id = submit(client, admin_headers, payload)
    view = wait_for_job(job_id, 120)
    rows = finished_deliveries(client, admin_headers, job_id, len(state_changes(view)))

    assert receiver.requests == []
    for row in rows:
        assert (row["status"], row["attempts"]) == ("refused", 1), row
        assert row["attemptLog"][0]["outcome"] == "refused"
        assert row["attemptLog"][0]["address"] is None
        assert "localhost resolves to" in row["lastError"]
        assert "loopback or private" in row["lastError"]
