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


def _exporters(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


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
