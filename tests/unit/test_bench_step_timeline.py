"""The step timeline's arithmetic: marks from two pool processes, two jobs interleaved."""

from __future__ import annotations

import pytest

from benchmarks.step_timeline import segments

ORDER = (
    "task_start", "lock_taken", "started", "provider_in", "provider_out", "completed", "task_end",
)  # fmt: skip


def task(pid: int, job: str, start: float, gaps: list[float]) -> list[tuple[float, int, str, str]]:
    """A task's marks: ``gaps`` are the seconds between consecutive marks."""
    moments = [start]
    for gap in gaps:
        moments.append(moments[-1] + gap)
    return [(moment, pid, what, job) for moment, what in zip(moments, ORDER, strict=True)]


def test_each_segment_is_measured_within_its_task_and_dispatch_between_a_jobs_tasks() -> None:
    # job a: a step in process 1, its next step in process 2 after a 3 ms dispatch;
    # job b runs in process 3 meanwhile, its marks interleaved with a's.
    a1 = task(1, "a", 10.000, [0.001, 0.008, 0.0005, 0.5, 0.007, 0.002])
    a2 = task(2, "a", 10.5185 + 0.003, [0.001, 0.010, 0.0005, 0.1, 0.009, 0.002])
    b1 = task(3, "b", 10.004, [0.002, 0.008, 0.0005, 0.3, 0.007, 0.002])
    found = {part.name: part for part in segments(a1 + b1 + a2)}

    assert found["lock"].samples == 3
    assert found["lock"].p50_ms == pytest.approx(1.0)
    # per job: a's two steps summed (8 + 10 ms), b's one (8 ms), mean over the two jobs
    assert found["mark running (transaction)"].per_job_ms == pytest.approx((18 + 8) / 2)
    assert found["record outputs (transaction)"].per_job_ms == pytest.approx((16 + 7) / 2)
    dispatch = found["Celery dispatch between tasks"]
    assert dispatch.samples == 1  # b has one task, so no gap of its own
    assert dispatch.p50_ms == pytest.approx(3.0)
    assert "provider" not in " ".join(found)  # the provider's own time is never counted


def test_a_task_whose_end_was_never_marked_is_left_out() -> None:
    marks = task(1, "a", 1.0, [0.001, 0.008, 0.0005, 0.5, 0.007, 0.002])[:-1]
    assert segments(marks) == []
