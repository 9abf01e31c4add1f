"""Expected completion of a running job, from each step's measured median duration.

The medians come from the history of completed steps, which grows without bound:
computing them per status request made every status read cost more as history
grew (issue 16). They change slowly (a median over the last runs), so each
process keeps them for MEDIAN_TTL_SECONDS and refreshes them from one query;
a status read between refreshes costs no query at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, func, select

from app.domain.states import StepStatus
from app.persistence.models import JobStep, utcnow

# Expected seconds per step until job_steps has history to measure.
DEFAULT_STEP_SECONDS: dict[str, float] = {
    "validate_config": 0.2,
    "create_database": 1.0,
    "create_oauth": 0.5,
    "deploy_container": 3.0,
    "deploy_workflows": 3.0,
    "configure_gateway": 0.5,
    "validate_deployment": 1.5,
}
# Each step's median over its most recent completed runs: recent enough to follow
# a changing environment.
ESTIMATE_HISTORY = 20
# An estimate a few seconds stale is still an estimate; one refresh per process
# per period bounds what history costs the status endpoint.
MEDIAN_TTL_SECONDS = 30.0

Medians = dict[tuple[str, str], float]


class StepProgress(Protocol):
    """What an estimate needs of a step (a JobStep row or a status summary)."""

    @property
    def name(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def started_at(self) -> datetime | None: ...


class TtlCache:
    """One value, recomputed by `load` when older than `ttl` (thread-safe: gunicorn
    threads share it; only one of them refreshes, the others keep the old value)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._value: Medians | None = None
        self._loaded_at = 0.0

    def get(self, load: Callable[[], Medians]) -> Medians:
        value = self._value
        if value is not None and self._clock() - self._loaded_at < self.ttl:
            return value
        if not self._lock.acquire(blocking=value is None):
            return value or {}  # another thread is refreshing: the old value will do
        try:
            self._value, self._loaded_at = load(), self._clock()
            return self._value
        finally:
            self._lock.release()

    def clear(self) -> None:
        self._value = None


_medians = TtlCache(MEDIAN_TTL_SECONDS)


def estimate(
    connection: Connection, steps: Iterable[StepProgress], now: datetime | None = None
) -> datetime:
    """Now plus the expected remaining seconds of the steps not finished yet."""
    medians = _medians.get(lambda: median_step_seconds(connection))
    moment = now or utcnow()
    remaining = sum(
        expected_seconds(s.name, s.action, s.status, s.started_at, medians, moment)
        for s in steps
        if s.status in (StepStatus.PENDING, StepStatus.IN_PROGRESS)
    )
    return moment + timedelta(seconds=remaining)


def after_waiting(now: datetime, own: datetime, position: int, places: int) -> datetime:
    """A waiting job starts once the jobs ahead of it have made room: about one
    job's duration for each full set of ``places`` ahead, then its own run."""
    rounds = -(-position // max(places, 1))  # ceil: position 1..places is one round
    return now + (own - now) * (rounds + 1)


def expected_seconds(
    name: str,
    action: str,
    status: str,
    started_at: datetime | None,
    medians: Medians,
    now: datetime,
) -> float:
    expected = medians.get((name, action), DEFAULT_STEP_SECONDS.get(name, 1.0))
    if status == StepStatus.IN_PROGRESS and started_at:
        expected -= (now - started_at).total_seconds()
    return max(expected, 0.0)


def median_step_seconds(connection: Connection) -> Medians:
    """(step name, action) -> median seconds of its last ESTIMATE_HISTORY completions."""
    recency = func.row_number().over(
        partition_by=(JobStep.name, JobStep.action), order_by=JobStep.finished_at.desc()
    )
    recent = (
        select(
            JobStep.name,
            JobStep.action,
            func.extract("epoch", JobStep.finished_at - JobStep.started_at).label("seconds"),
            recency.label("recency"),
        )
        .where(
            JobStep.status == StepStatus.COMPLETED,
            JobStep.started_at.is_not(None),
            JobStep.finished_at.is_not(None),
        )
        .subquery()
    )
    rows = connection.execute(
        select(
            recent.c.name,
            recent.c.action,
            func.percentile_cont(0.5).within_group(recent.c.seconds),
        )
        .where(recent.c.recency <= ESTIMATE_HISTORY)
        .group_by(recent.c.name, recent.c.action)
    )
    return {(name, action): float(median) for name, action, median in rows}
