"""OpenTelemetry: one trace per job, from the API request through every Celery
step and compensation task down to each provider's outbound call.

The maintained instrumentations do the work: Flask (the request span),
Celery (W3C trace context in the task message headers, a span per task run),
requests (Caddy, n8n, Railway, the agent's health) and psycopg2 (tenant
schemas and the orchestrator's own queries). Spans are exported over OTLP only
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the SDK reads the standard OTEL_*
variables: headers, protocol, timeouts). Without an endpoint no span is
recorded (issue 16: a recorded span per query, request and task cost the worker
a tenth of its CPU, for spans nobody received); trace and span ids are still
made and propagated, so logs, the job record and every step keep the trace id
to search by. Queries and outbound HTTP calls are instrumented only while spans
are recorded: their spans are leaves, so unrecorded they carried nothing (no
component we call reads a traceparent unless it exports too), and starting one
per query was 4 % of the API's CPU per status read, per call 4 % of the worker's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from flask import Flask
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

logger = logging.getLogger("provisioning.tracing")

# Scrapes, probes and static files would bury the jobs' traces.
EXCLUDED_URLS = "/metrics,/openapi.json,/static/.*,/api-docs.*,/redoc"
_installed = False


def init_tracing(app: Flask, service_name: str = "provisioning-orchestrator") -> None:
    """Once per process: the tracer provider and library instrumentations; and
    the Flask instrumentation for each app (create_app may run more than once)."""
    global _installed
    if not _installed:
        _install_provider(service_name)
        _instrument_libraries()
        _installed = True
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    if not getattr(app, "_is_instrumented_by_opentelemetry", False):
        FlaskInstrumentor().instrument_app(app, excluded_urls=EXCLUDED_URLS)


class RecordWhenExported(Sampler):
    """Ids for every span, recorded ones only once something receives them.

    A non-recording span still has a valid context, so the trace id reaches the
    logs and the Celery message headers; it just skips the attributes, events
    and processors."""

    def __init__(self) -> None:
        self._inner: Sampler = ALWAYS_OFF

    def record(self) -> None:
        self._inner = ParentBased(ALWAYS_ON)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        return self._inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"RecordWhenExported({self._inner.get_description()})"


def _install_provider(service_name: str) -> None:
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The SDK's own sampler (OTEL_TRACES_SAMPLER, parent-based always-on by default).
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _instrument_leaf_calls()
        logger.info("exporting traces over OTLP to %s", os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"])
    else:
        provider = TracerProvider(resource=resource, sampler=RecordWhenExported())
    trace.set_tracer_provider(provider)


def export_to(processor: SpanProcessor) -> None:
    """Sends this process's spans to ``processor`` from now on, recording them
    if they were not (an in-process exporter, as the tracing tests use)."""
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "init_tracing installs the SDK provider"
    provider.add_span_processor(processor)
    if isinstance(provider.sampler, RecordWhenExported):
        provider.sampler.record()
    _instrument_leaf_calls()


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    CeleryInstrumentor().instrument()  # carries each job's trace from task to task


def _instrument_leaf_calls() -> None:
    """HTTP calls trace from now on; so do the queries of connections opened from
    now on: every one when exporting from the start; after a late export_to (the
    tracing tests), those opened later, as the providers' (they connect afresh
    for each change)."""
    from opentelemetry.instrumentation.psycopg2 import Psycopg2Instrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    if not RequestsInstrumentor().is_instrumented_by_opentelemetry:
        RequestsInstrumentor().instrument()
    if not Psycopg2Instrumentor().is_instrumented_by_opentelemetry:
        # skip_dep_check: the instrumentation asks for `psycopg2`, we install psycopg2-binary.
        Psycopg2Instrumentor().instrument(skip_dep_check=True)
