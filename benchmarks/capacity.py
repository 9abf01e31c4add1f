"""Issue 16, a burst past capacity: N departments at once (300 by default) with the
default MAX_PROVISIONING_TIME. All must complete and none may time out; the jobs
that wait for a place must say so in their status (a queue position), and their
time budget must start when they are admitted, not when they were submitted.

While the burst runs, the last job submitted (the one that waits longest) is read
through the API every few seconds, and the records are counted (waiting,
running, ended), so the report shows what an operator watching it would see.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks import costs
from benchmarks.jobs import JobRow, new_department_id
from benchmarks.metrics import fmt, load_average, percentile
from benchmarks.phases import Bench

SAMPLE_EVERY = 5.0  # seconds between two looks at the burst
SECONDS_PER_JOB = 4.0  # the wait's backstop grows with the burst (a CPU-bound queue)


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the burst was submitted
    waiting: int
    running: int
    ended: int
    last_position: int | None  # the last job's queuePosition, as the API gives it
    last_step: str


def _look(bench: Bench, jobs: Sequence[str], started: float) -> Sample:
    waiting, running, ended = bench.db.admission_counts(jobs)
    status: dict[str, Any] = bench.api.status(jobs[-1])
    return Sample(
        time.monotonic() - started, int(waiting), int(running), int(ended),
        status.get("queuePosition"), str(status.get("currentStep") or status.get("status")),
    )  # fmt: skip


def _watch(bench: Bench, jobs: Sequence[str], samples: list[Sample], timeout: float) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        sample = _look(bench, jobs, started)
        samples.append(sample)
        if sample.ended == len(jobs):
            return
        time.sleep(SAMPLE_EVERY)


def _run(bench: Bench, size: int, rows: list[JobRow], samples: list[Sample]) -> None:
    ids = [new_department_id(bench.settings.prefix) for _ in range(size)]
    bench.departments.extend(ids)
    jobs = bench.api.submit_many(ids)
    _watch(bench, jobs, samples, max(900.0, SECONDS_PER_JOB * size))
    rows.extend(bench.db.jobs(jobs))


def admission_burst(bench: Bench, size: int, roots: dict[str, int]) -> None:
    rows: list[JobRow] = []
    samples: list[Sample] = []
    spent, _, wall = costs.measure_cpu(
        roots, bench.settings.prefix, lambda: _run(bench, size, rows, samples)
    )
    budgets = bench.db.admission_budgets([j.job_id for j in rows])
    bench.say(*report(size, rows, samples, budgets, spent, wall))


def _outcomes(rows: Sequence[JobRow]) -> str:
    failed = Counter(
        f"{j.state}: {(j.error or {}).get('message', 'unfinished')}"[:160]
        for j in rows
        if j.state != "COMPLETED"
    )
    return f" Not completed: {dict(failed)}." if failed else ""


def _timeline(samples: Sequence[Sample]) -> list[str]:
    """Every sample up to the first with nobody waiting, then every sixth."""
    shown = [s for i, s in enumerate(samples) if s.waiting or i % 6 == 0 or s is samples[-1]]
    return [
        f"| {fmt(s.at, 0)} | {s.waiting} | {s.running} | {s.ended}"
        f" | {'' if s.last_position is None else s.last_position} | {s.last_step[:60]} |"
        for s in shown
    ]


def report(
    size: int,
    rows: Sequence[JobRow],
    samples: Sequence[Sample],
    budgets: Sequence[tuple[float, float]],
    spent: dict[str, float],
    wall: float,
) -> list[str]:
    done = sum(1 for j in rows if j.state == "COMPLETED")
    ours, cores = sum(spent.values()), os.cpu_count() or 1
    waits = [w for w, _ in budgets]
    budget = sorted({round(b) for _, b in budgets})
    first = next((s for s in samples if s.last_position is not None), None)
    return [
        "",
        f"### 9. {size} at once with the default MAX_PROVISIONING_TIME (issue 16;"
        f" load {load_average()})",
        "",
        f"**{done}/{size} completed** in {fmt(wall, 1)} s.{_outcomes(rows)} Waiting for a"
        f" place: p50 {fmt(percentile(waits, 50), 1)} s, max {fmt(max(waits, default=0), 1)} s;"
        f" each job's budget counted from its admission: {budget} s. The last job submitted"
        f" first read queue position {first.last_position if first else 'none'}"
        f" ({first.last_step if first else 'never waited'!r}).",
        f"CPU: {fmt(ours, 1)} CPU-s in our processes, {fmt(ours / size, 3)} per department;"
        f" bound {fmt(ours / cores, 1)} s on {cores} cores, wall / bound"
        f" = {fmt(wall / (ours / cores) if ours else float('nan'), 2)} (target ≤ 1.25).",
        "",
        "| s | waiting | running | ended | last job's queuePosition | its currentStep |",
        "|---|---|---|---|---|---|",
        *_timeline(samples),
    ]
