"""The metrics dashboards expect beside the job ones (prometheus.py): HTTP
requests per route, and, read at scrape time so every process and host agrees,
departments by status, webhook attempts by outcome, the broker's queue depth
and build info.

HTTP metrics use the route template (``/api/departments/<department_id:...>``),
never the raw path, so ids do not explode the label set.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Iterator
from importlib import metadata

from flask import Flask, Response, g, request
from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func, select

from app.persistence.database import db
from app.persistence.models import Department
from app.persistence.webhook_models import WebhookAttempt

logger = logging.getLogger("provisioning.metrics")

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UNMATCHED = "<unmatched>"  # 404s for unknown paths: one label, not one per path


def init_http_metrics(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_observe)


def _start() -> None:
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = getattr(g, "metrics_started", None)
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    if route == "/metrics":
        return response  # scrapes would dominate the request rate
    HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    if started is not None:
        HTTP_DURATION.labels(request.method, route).observe(time.perf_counter() - started)
    return response


def _version() -> str:
    try:
        return metadata.version("provisioning-orchestrator")
    except metadata.PackageNotFoundError:
        return "unknown"


class FleetCollector:
    """Counted from the database (and the broker) when scraped."""

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected lazily: no database access at registration

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily(
            "provisioning_build_info",
            "Version of the running orchestrator.",
            labels=["version", "python"],
        )
        build.add_metric([_version(), platform.python_version()], 1)
        yield build
        try:
            yield from (self._departments(), self._webhook_attempts())
        except Exception:
            logger.exception("could not read fleet metrics from the database")
        depth = self._queue_depth()
        if depth is not None:
            yield depth

    @staticmethod
    def _departments() -> Metric:
        family = GaugeMetricFamily(
            "provisioning_departments", "Departments by status.", labels=["status"]
        )
        with db.transaction() as session:
            rows = session.execute(
                select(Department.status, func.count()).group_by(Department.status)
            ).all()
        for status, count in sorted(rows):
            family.add_metric([status], int(count))
        return family

    @staticmethod
    def _webhook_attempts() -> Metric:
        family = CounterMetricFamily(
            "webhook_delivery_attempts",
            "Webhook delivery attempts by outcome (delivered, http_error, network_error, refused).",
            labels=["outcome"],
        )
        with db.transaction() as session:
            rows = session.execute(
                select(WebhookAttempt.outcome, func.count()).group_by(WebhookAttempt.outcome)
            ).all()
        for outcome, count in sorted(rows):
            family.add_metric([outcome], int(count))
        return family

    @staticmethod
    def _queue_depth() -> Metric | None:
        from app.domain import dispatch

        try:
            depth = dispatch.current().backlog()
        except Exception:
            logger.warning("could not read the broker's queue depth", exc_info=True)
            return None
        family = GaugeMetricFamily(
            "celery_queue_length", "Task messages waiting for a worker.", labels=["queue"]
        )
        family.add_metric(["celery"], depth)
        return family


fleet = FleetCollector()
