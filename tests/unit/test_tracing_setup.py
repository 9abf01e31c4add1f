"""Tracing set-up: OTLP export only when OTEL_EXPORTER_OTLP_ENDPOINT is set, and
the trace id in every log record made inside a span."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from app.observability.logs import ContextFilter

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
from flask import Flask
from opentelemetry import trace
from app.observability.tracing import init_tracing
init_tracing(Flask("probe"))
processors = trace.get_tracer_provider()._active_span_processor._span_processors
exporters = [getattr(p, "span_exporter", getattr(p, "_exporter", None)) for p in processors]
print([type(e).__name__ for e in exporters])
"""


def _probe(script: str, **env: str) -> list[str]:
    """What ``script`` prints in a fresh interpreter (the tracer provider is
    process-wide), with no OTEL_* variable but those given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip().splitlines()


def _exporters(**env: str) -> str:
    return _probe(PROBE, **env)[0]


def test_no_endpoint_no_exporter() -> None:
    assert _exporters() == "[]"


def test_an_endpoint_exports_over_otlp() -> None:
    assert "OTLPSpanExporter" in _exporters(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318")


def test_log_records_carry_the_trace_id() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("job") as span:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
        ContextFilter().filter(record)
    assert record.traceId == f"{span.get_span_context().trace_id:032x}"  # type: ignore[attr-defined]
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    ContextFilter().filter(outside)
    assert not hasattr(outside, "traceId")


RECORDING = """
from flask import Flask
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from app.observability.tracing import export_to, init_tracing
init_tracing(Flask("probe"))
tracer = trace.get_tracer("probe")
with tracer.start_as_current_span("before") as span:
    context = span.get_span_context()
    print(span.is_recording(), context.is_valid, context.trace_id != 0)
exporter = InMemorySpanExporter()
export_to(SimpleSpanProcessor(exporter))
with tracer.start_as_current_span("after") as span:
    print(span.is_recording())
print([s.name for s in exporter.get_finished_spans()])
"""


def test_without_an_endpoint_spans_have_ids_but_record_nothing_until_exported() -> None:
    """Issue 16: recorded spans nobody received cost the worker a tenth of its CPU.
    The ids stay (logs and the job's record search by them)."""
    assert _probe(RECORDING) == ["False True True", "True", "['after']"]


def test_with_an_endpoint_every_span_records() -> None:
    lines = _probe(RECORDING, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert lines[0] == "True True True"


QUERIES = """
from flask import Flask
from opentelemetry.instrumentation.psycopg2 import Psycopg2Instrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from app.observability.tracing import export_to, init_tracing
init_tracing(Flask("probe"))
leaves = (Psycopg2Instrumentor(), RequestsInstrumentor())
print([i.is_instrumented_by_opentelemetry for i in leaves])
export_to(SimpleSpanProcessor(InMemorySpanExporter()))
print([i.is_instrumented_by_opentelemetry for i in leaves])
"""


def test_queries_and_http_calls_are_traced_only_while_spans_are_recorded() -> None:
    """Their spans are leaves: unrecorded they carried nothing, and starting one
    per query cost 4 % of the API's CPU, per call 4 % of the worker's (issue 16)."""
    assert _probe(QUERIES) == ["[False, False]", "[True, True]"]
    exporting = _probe(QUERIES, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert exporting == ["[True, True]", "[True, True]"]
