"""Prometheus metrics, fed by committed job events, served at ``/metrics``.

Gunicorn and Celery prefork run many processes; prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by the launchers before
they fork: scripts/stack.sh, tests/support/stack.py) keeps each process's
values in files there, and a scrape of any API process adds them all up. The
in-flight gauge is read from the database at scrape time instead, so it is
right whichever process (or host) runs the jobs, and even after a crash.

/metrics answers loopback clients only, unless METRICS_TOKEN is set: then it
wants ``Authorization: Bearer <METRICS_TOKEN>`` from anyone.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from celery.signals import worker_process_shutdown
from flask import Blueprint, Flask, Response, abort, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from app import config
from app.domain import events
from app.domain.events import JobEvent
from app.domain.kinds import JobKind
from app.domain.states import TERMINAL_STATES
from app.observability.fleet_metrics import fleet, init_http_metrics
from app.persistence.database import db
from app.persistence.models import ProvisioningJob

logger = logging.getLogger("provisioning.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TERMINAL = frozenset(state.value for state in TERMINAL_STATES)
STEP_END_STATUSES = {"completed", "failed"}
COMPENSATION_END_STATUSES = {"rolled_back", "compensation_failed"}
KINDS: tuple[str, ...] = tuple(JobKind)

JOBS = Counter(
    "provisioning_jobs_total", "Jobs that reached a terminal state.", ["kind", "outcome"]
)
JOB_DURATION = Histogram(
    "provisioning_job_duration_seconds",
    "From submission to the terminal state.",
    ["kind", "outcome"],
    buckets=(1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600),
)
STEP_DURATION = Histogram(
    "provisioning_step_duration_seconds",
    "A step from its first attempt to its completion or failure (retries included).",
    ["kind", "step", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
)
ROLLBACKS = Counter("provisioning_rollbacks_total", "Jobs that started rolling back.", ["kind"])
COMPENSATIONS = Counter(
    "provisioning_compensations_total",
    "Compensations that ended: rolled_back, or compensation_failed (left behind).",
    ["step", "status"],
)
RETRIES = Counter(
    "provisioning_step_retries_total", "Transient failures retried after backoff.", ["kind", "step"]
)
SWEEPER_ACTIONS = Counter(
    "provisioning_sweeper_actions_total",
    "Stalled jobs the sweeper set going again, by action.",
    ["action"],
)

RETENTION_RUNS = Counter(
    "provisioning_retention_runs_total",
    "Departments the retention task went through, by outcome (ok, failed).",
    ["outcome"],
)
RETENTION_DELETED = Counter(
    "provisioning_retention_deleted_rows_total",
    "Tenant rows deleted for being older than the department's dataRetention.",
    ["table"],
)


def sweeper_action(action: str) -> None:
    SWEEPER_ACTIONS.labels(action).inc()


def retention_purged(outcome: str, removed: dict[str, int]) -> None:
    RETENTION_RUNS.labels(outcome).inc()
    for table, rows in removed.items():
        RETENTION_DELETED.labels(table).inc(rows)


# --- Turning committed job events into samples.


def on_job_event(event: JobEvent) -> None:
    handler = HANDLERS.get(event.type)
    if handler is not None:
        handler(event)


def _on_state(event: JobEvent) -> None:
    state = str(event.data.get("state", ""))
    if state == "ROLLING_BACK":
        ROLLBACKS.labels(event.kind).inc()
    if state in TERMINAL:
        outcome = state.lower()
        JOBS.labels(event.kind, outcome).inc()
        duration = _job_duration(event.job_id)
        if duration is not None:
            JOB_DURATION.labels(event.kind, outcome).observe(duration)


def _on_step(event: JobEvent) -> None:
    step, status = str(event.data.get("step")), str(event.data.get("status"))
    duration = event.data.get("durationSeconds")
    # A compensation's record keeps the forward start time, so its "duration"
    # would mix both directions: only forward (or deprovision) ends are timed.
    if status in STEP_END_STATUSES and duration is not None:
        STEP_DURATION.labels(event.kind, step, status).observe(float(duration))
    elif status in COMPENSATION_END_STATUSES:
        COMPENSATIONS.labels(step, status).inc()


def _on_retry(event: JobEvent) -> None:
    RETRIES.labels(event.kind, str(event.data.get("step") or "unknown")).inc()


HANDLERS: dict[str, Callable[[JobEvent], None]] = {
    "state": _on_state,
    "step": _on_step,
    "retry": _on_retry,
}


def _job_duration(job_id: str) -> float | None:
    """Submission to completion, read back once the terminal state is committed."""
    with db.transaction() as session:
        row = session.execute(
            select(ProvisioningJob.created_at, ProvisioningJob.completed_at).where(
                ProvisioningJob.id == uuid.UUID(job_id)
            )
        ).first()
    if row is None or row.completed_at is None:
        return None
    return max((row.completed_at - row.created_at).total_seconds(), 0.0)


# --- Scrape-time collectors and the exposition endpoint.


class InFlightCollector:
    """``provisioning_jobs_in_flight{kind}`` and, of those, ``provisioning_jobs_waiting{kind}``
    (not yet admitted: MAX_ACTIVE_JOBS reached), counted in the database when scraped."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            counts = _in_flight_counts()
        except Exception:
            logger.exception("could not count in-flight jobs")
            return
        in_flight, waiting = self._families()
        for kind in sorted(set(KINDS) | {kind for kind, _ in counts}):
            queued = counts.get((kind, True), 0)
            in_flight.add_metric([kind], counts.get((kind, False), 0) + queued)
            waiting.add_metric([kind], queued)
        yield in_flight
        yield waiting

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "provisioning_jobs_in_flight", "Jobs not yet in a terminal state.", labels=["kind"]
            ),
            GaugeMetricFamily(
                "provisioning_jobs_waiting",
                "Jobs in flight still waiting for a place (MAX_ACTIVE_JOBS).",
                labels=["kind"],
            ),
        )


def _in_flight_counts() -> dict[tuple[str, bool], int]:
    """(kind, waiting) -> jobs not ended."""
    waiting = ProvisioningJob.admitted_at.is_(None)
    with db.transaction() as session:
        rows = session.execute(
            select(ProvisioningJob.kind, waiting, func.count())
            .where(ProvisioningJob.state.not_in(TERMINAL))
            .group_by(ProvisioningJob.kind, waiting)
        ).all()
    return {(kind, bool(w)): int(count) for kind, w, count in rows}


def multiproc_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


_in_flight = InFlightCollector()


def scrape_registry() -> CollectorRegistry:
    if multiproc_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(_in_flight)
        registry.register(fleet)
        return registry
    return REGISTRY


def mark_process_dead(pid: int) -> None:
    """Drops a dead process's live-gauge files (its counters stay, as they must)."""
    if multiproc_dir():
        multiprocess.mark_process_dead(pid)


def _client_is_loopback() -> bool:
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def _authorised() -> bool:
    token = config.current().METRICS_TOKEN
    if not token:
        return _client_is_loopback()
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


exposition = Blueprint("metrics_exposition", __name__)


@exposition.get("/metrics")
def metrics_endpoint() -> Response:
    if not _authorised():
        abort(401 if config.current().METRICS_TOKEN else 403)
    return Response(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)


def init_metrics(app: Flask) -> None:
    """Subscribes to job events and serves /metrics (the app exempts it from rate limits)."""
    events.subscribe(on_job_event)
    app.register_blueprint(exposition)
    init_http_metrics(app)
    global _in_flight_registered
    if not multiproc_dir() and not _in_flight_registered:
        # Single-process mode (no multiproc dir): the default registry is the scrape.
        REGISTRY.register(_in_flight)
        REGISTRY.register(fleet)
        _in_flight_registered = True


_in_flight_registered = False


@worker_process_shutdown.connect
def _pool_child_exit(pid: int | None = None, **_: Any) -> None:
    mark_process_dead(pid or os.getpid())
