"""OpenTelemetry: one trace per job, from the API request through every Celery
step and compensation task down to each provider's outbound call.

The maintained instrumentations do the work: Flask (the request span),
Celery (W3C trace context in the task message headers, a span per task run),
requests (Caddy, n8n, Railway, the agent's health) and psycopg2 (tenant
schemas and the orchestrator's own queries). Spans are exported over OTLP only
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the SDK reads the standard OTEL_*
variables: headers, protocol, timeouts); otherwise they are made and dropped,
which still gives logs and the job record a trace id to search by.
"""

from __future__ import annotations

import logging
import os

from flask import Flask
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

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


def _install_provider(service_name: str) -> None:
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        logger.info("exporting traces over OTLP to %s", os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"])
    trace.set_tracer_provider(provider)


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.psycopg2 import Psycopg2Instrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    CeleryInstrumentor().instrument()
    RequestsInstrumentor().instrument()
    # skip_dep_check: the instrumentation asks for `psycopg2`, we install psycopg2-binary.
    Psycopg2Instrumentor().instrument(skip_dep_check=True)
