"""OpenTelemetry on the real stack: one provisioning is one trace, from the API
request through every Celery step (and the compensations of a rollback) down to
the providers' outbound calls.

Spans are collected by an in-memory exporter, so the API and the worker run in
this process: the Flask app answers through its test client and a real Celery
worker (solo pool, in a thread) consumes the real Redis broker while the
stack's worker process is stopped. Caddy, n8n, PostgreSQL and the agents are
the real ones.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from app import config
from app.domain import saga
from app.domain.services.queries import job_view
from app.observability.tracing import export_to
from tests.conftest import Stack, department_payload
from tests.e2e.conftest import submit, wait_for_job, wait_until_no_job_runs
from tests.e2e.test_resilience import limits

STEP_SPANS = [f"run/provisioning.step.{step.name}" for step in saga.SAGA]


@pytest.fixture(scope="module")
def spans(app: Flask, live_stack: Stack) -> Iterator[InMemorySpanExporter]:
    from celery.contrib.testing.worker import start_worker

    assert isinstance(trace.get_tracer_provider(), TracerProvider), "create_app installs the SDK"
    exporter = InMemorySpanExporter()
    export_to(SimpleSpanProcessor(exporter))
    live_stack.worker.stop()
    try:
        with start_worker(
            app.extensions["celery"], pool="solo", perform_ping_check=False, shutdown_timeout=30
        ):
            yield exporter
    finally:
        exporter.shutdown()  # later spans are dropped; the processor stays, harmless
        live_stack.restart_worker()


def _finished(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    found = [s for s in exporter.get_finished_spans() if f"{s.context.trace_id:032x}" == trace_id]
    return sorted(found, key=lambda s: s.start_time or 0)


def _trace(exporter: InMemorySpanExporter, trace_id: str, settle: float = 15) -> list[ReadableSpan]:
    """The trace once every finished span's parent has finished too. The job's
    record says it ended when its last transaction commits; the worker thread
    ends that task's span a moment later (after-commit work, the unlock), and
    spans are exported when they end. A parent that never ends, or a broken
    propagation, still leaves orphans for the assertions to find."""
    deadline = time.monotonic() + settle
    while True:
        found = _finished(exporter, trace_id)
        ended = {s.context.span_id for s in found}
        if all(s.parent is None or s.parent.span_id in ended for s in found):
            return found
        if time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _descendants(spans: list[ReadableSpan], root: ReadableSpan) -> list[ReadableSpan]:
    by_parent: dict[int, list[ReadableSpan]] = {}
    for span in spans:
        if span.parent is not None:
            by_parent.setdefault(span.parent.span_id, []).append(span)
    out, todo = [], [root.context.span_id]
    while todo:
        children = by_parent.get(todo.pop(), [])
        out.extend(children)
        todo.extend(c.context.span_id for c in children)
    return out


def _attribute(span: ReadableSpan, *names: str) -> Any:
    attributes = span.attributes or {}
    return next((attributes[n] for n in names if n in attributes), None)


def test_one_provisioning_is_one_trace_covering_every_step(
    spans: InMemorySpanExporter, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    job_id = submit(client, admin_headers, department_payload())
    view = wait_for_job(job_id, 180)
    assert view["status"] == "completed", view
    trace_id = view["traceId"]
    assert trace_id and len(trace_id) == 32

    found = _trace(spans, trace_id)
    roots = [s for s in found if s.parent is None]
    assert [r.name for r in roots] == ["POST /api/provision-department"], [r.name for r in roots]
    assert len(_descendants(found, roots[0])) == len(found) - 1  # one tree, nothing detached

    steps = [s for s in found if s.name in STEP_SPANS]
    assert [s.name for s in steps] == STEP_SPANS  # all seven, in order
    by_name = {s.name: s for s in steps}
    database = _descendants(found, by_name["run/provisioning.step.create_database"])
    assert any(_attribute(s, "db.system", "db.system.name") == "postgresql" for s in database)
    gateway = _descendants(found, by_name["run/provisioning.step.configure_gateway"])
    assert any(_attribute(s, "http.request.method", "http.method") for s in gateway)  # Caddy
    workflows = _descendants(found, by_name["run/provisioning.step.deploy_workflows"])
    assert any(_attribute(s, "http.request.method", "http.method") for s in workflows)  # n8n


def test_a_job_that_waited_for_a_place_is_still_one_trace(
    spans: InMemorySpanExporter,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: Any,
) -> None:
    """The worker admits it when the job holding the only place ends, and sends
    its steps from there: they must still join the request it was submitted in."""
    holder, waiting = department_payload(), department_payload()
    faults.arm(holder["departmentId"], "container.create", mode="delay", seconds=5, times=1)
    wait_until_no_job_runs()
    with limits(step_timeout=60, job_timeout=300, MAX_ACTIVE_JOBS=1):  # API and worker: here
        first = submit(client, admin_headers, holder)
        job_id = submit(client, admin_headers, waiting)
        queued = job_view(uuid.UUID(job_id), config.current())
        assert queued is not None and queued["queuePosition"] == 1, queued
        assert wait_for_job(first, 180)["status"] == "completed"
        view = wait_for_job(job_id, 180)
    assert view["status"] == "completed", view
    assert any("admitted after waiting" in line for line in view["logs"]), view["logs"]

    found = _trace(spans, view["traceId"])
    roots = [s for s in found if s.parent is None]
    assert [r.name for r in roots] == ["POST /api/provision-department"], [r.name for r in roots]
    assert len(_descendants(found, roots[0])) == len(found) - 1
    assert [s.name for s in found if s.name in STEP_SPANS] == STEP_SPANS


def test_a_rollback_marks_the_failing_step_and_traces_the_compensations(
    spans: InMemorySpanExporter,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: Any,
) -> None:
    payload = department_payload()
    faults.arm(payload["departmentId"], "gateway.create", mode="fail")
    view = wait_for_job(submit(client, admin_headers, payload), 180)
    assert view["status"] == "failed", view

    found = _trace(spans, view["traceId"])
    failing = [s for s in found if s.name == "run/provisioning.step.configure_gateway"]
    assert failing and failing[-1].status.status_code is StatusCode.ERROR
    assert all(
        s.status.status_code is not StatusCode.ERROR
        for s in found
        if s.name in STEP_SPANS[:-2]  # the steps before it succeeded
    )
    compensations = [s.name for s in found if s.name.startswith("run/provisioning.compensate.")]
    assert compensations, [s.name for s in found]
