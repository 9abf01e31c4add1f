"""The benchmark's report of a burst past capacity (issue 16's 300 at once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from benchmarks.capacity import Sample, report
from benchmarks.jobs import JobRow

T0 = datetime(2026, 12, 4, tzinfo=UTC)


def _job(n: int, state: str, error: dict[str, str] | None = None) -> JobRow:
    end = T0 + timedelta(seconds=60)
    return JobRow(f"j{n}", f"d{n}", "provision", state, T0, end, error, steps=())


def _samples() -> list[Sample]:
    return [Sample(5.0 * i, max(8 - 2 * i, 0), 4, 2 * i, None, "Validating") for i in range(10)]


def test_a_timeout_is_named_and_not_counted_as_completed() -> None:
    rows = [_job(1, "COMPLETED"), _job(2, "FAILED", {"message": "job exceeded 300s"})]
    text = "\n".join(report(2, rows, _samples(), [(0.0, 300.0), (12.5, 300.0)], {"api": 4.0}, 9.0))
    assert "**1/2 completed**" in text
    assert "FAILED: job exceeded 300s" in text
    assert "[300] s" in text  # every budget counted from admission
    assert "max 12.5 s" in text


def test_the_timeline_keeps_every_sample_with_jobs_waiting() -> None:
    samples = _samples()
    samples[0] = Sample(0.0, 8, 4, 0, 296, "Waiting for a place (296 ahead)")
    lines = report(1, [_job(1, "COMPLETED")], samples, [(0.0, 300.0)], {"api": 1.0}, 5.0)
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| s ")]
    waiting = [s for s in samples if s.waiting]
    assert len(rows) >= len(waiting)
    assert "| 296 |" in rows[0]
    assert "first read queue position 296" in "\n".join(lines)
