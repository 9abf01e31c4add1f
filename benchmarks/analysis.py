"""Turning job records and provider timings into the numbers the report shows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.jobs import JobRow
from benchmarks.metrics import percentile
from benchmarks.timing import ProviderCall

STEP_PROVIDER = {
    "validate_config": "validation",
    "create_database": "database",
    "create_oauth": "oauth",
    "deploy_container": "container",
    "deploy_workflows": "workflows",
    "configure_gateway": "gateway",
    "validate_deployment": "deployment_check",
}


@dataclass(frozen=True)
class Overhead:
    wall: float
    provider: float

    @property
    def seconds(self) -> float:
        return self.wall - self.provider

    @property
    def percent(self) -> float:
        return 100 * self.seconds / self.wall if self.wall > 0 else math.nan


def overhead(job: JobRow, calls: Sequence[ProviderCall]) -> Overhead:
    """Wall time (submission recorded -> completion committed) vs time inside `create` calls."""
    inside = sum(c.seconds for c in job.provider_calls(calls) if c.operation == "create")
    return Overhead(job.wall_seconds, inside)


@dataclass(frozen=True)
class StepBreakdown:
    name: str
    step_p50: float  # job_steps finished_at - started_at
    step_p95: float
    provider_p50: float  # time inside the provider's create, same step
    gap_p50: float  # previous step finished (or job created) -> this step started
    retried: int  # jobs where this step needed more than one attempt


def _gap(job: JobRow, index: int) -> float | None:
    started = job.steps[index].started_at
    previous = job.created_at if index == 0 else job.steps[index - 1].finished_at
    if started is None or previous is None:
        return None
    return (started - previous).total_seconds()


def _provider_seconds(job: JobRow, step: str, calls: Sequence[ProviderCall]) -> float:
    wanted = STEP_PROVIDER[step]
    return sum(
        c.seconds for c in job.provider_calls(calls)
        if c.provider == wanted and c.operation == "create"
    )  # fmt: skip


def step_breakdown(jobs: Sequence[JobRow], calls: Sequence[ProviderCall]) -> list[StepBreakdown]:
    rows = []
    for index, name in enumerate(STEP_PROVIDER):
        durations = [s for j in jobs if (s := j.steps[index].seconds) is not None]
        gaps = [g for j in jobs if (g := _gap(j, index)) is not None]
        inside = [_provider_seconds(j, name, calls) for j in jobs]
        rows.append(
            StepBreakdown(
                name,
                percentile(durations, 50),
                percentile(durations, 95),
                percentile(inside, 50),
                percentile(gaps, 50),
                sum(1 for j in jobs if j.steps[index].attempts > 1),
            )
        )
    return rows


def span_seconds(jobs: Sequence[JobRow]) -> float:
    """First submission recorded -> last job finished."""
    ends = [j.completed_at for j in jobs if j.completed_at is not None]
    if not ends:
        return math.nan
    return (max(ends) - min(j.created_at for j in jobs)).total_seconds()
