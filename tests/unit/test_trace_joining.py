"""A job's messages go out in the trace it was submitted in, whoever sends them
(tasks/canvas.py CeleryDispatcher.joining)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from tasks.canvas import CeleryDispatcher

JOB_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
JOB_PARENT = f"00-{JOB_TRACE}-00f067aa0ba902b7-01"
tracer = TracerProvider().get_tracer("test")


def _current_trace() -> str:
    return f"{trace.get_current_span().get_span_context().trace_id:032x}"


def test_a_sender_outside_the_job_trace_sends_in_it_and_is_restored() -> None:
    with tracer.start_as_current_span("sweep") as sweep:
        own = f"{sweep.get_span_context().trace_id:032x}"
        with CeleryDispatcher().joining(JOB_PARENT):
            assert _current_trace() == JOB_TRACE
            parent = trace.get_current_span().get_span_context()
            assert f"{parent.span_id:016x}" == "00f067aa0ba902b7"
        assert _current_trace() == own


def test_the_submitting_request_keeps_its_own_span() -> None:
    with tracer.start_as_current_span("request") as request:
        parent = f"00-{request.get_span_context().trace_id:032x}-{'1' * 16}-01"
        with CeleryDispatcher().joining(parent):
            assert trace.get_current_span() is request


def test_no_or_a_malformed_context_changes_nothing() -> None:
    with tracer.start_as_current_span("sweep") as sweep:
        for value in (None, "", "not-a-traceparent", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"):
            with CeleryDispatcher().joining(value):
                assert trace.get_current_span() is sweep
