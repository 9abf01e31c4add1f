"""Where a step's orchestration time goes: marks taken inside the benchmark's worker.

`benchmarks.worker` installs these marks when started with BENCH_STEP_TIMELINE=1
(the timeline phase restarts the worker so, and back without, because each mark
costs a little). Every forward step task leaves, in its pool process, in order:

    task_start (Celery's task_prerun) -> lock_taken (the job's advisory lock) ->
    started (the "mark running" transaction committed) -> provider_in ->
    provider_out -> completed (the "record outputs" transaction committed) ->
    task_end (task_postrun: the lock released, the next task published, acked)

The marks of one task are pushed to Redis in one round trip at task_end, after
its last mark, so the push is outside every measured segment. No core file
changes: only names in `execution` and `guards` are rebound in this process.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from celery import signals

from app.domain.services import execution, guards
from benchmarks.metrics import percentile

MARKS_KEY = "po:bench:step-marks"
ENV_SWITCH = "BENCH_STEP_TIMELINE"
SEGMENTS = (
    ("lock", "task_start", "lock_taken"),
    ("mark running (transaction)", "lock_taken", "started"),
    ("heartbeat and alarm set-up", "started", "provider_in"),
    ("record outputs (transaction)", "provider_out", "completed"),
    ("unlock, publish next, ack", "completed", "task_end"),
)
_marks: list[tuple[float, int, str, str]] = []


def _mark(what: str, job_id: object) -> None:
    _marks.append((time.time(), os.getpid(), what, str(job_id)))


def install(redis_url: str) -> None:
    """Rebinds the step runner's helpers in this process to leave marks."""
    client = redis.Redis.from_url(redis_url)

    @signals.task_prerun.connect(weak=False)
    def _task_start(args: Sequence[Any] | None = None, **_: Any) -> None:
        _mark("task_start", args[0] if args else "")

    @signals.task_postrun.connect(weak=False)
    def _task_end(args: Sequence[Any] | None = None, **_: Any) -> None:
        _mark("task_end", args[0] if args else "")
        client.rpush(MARKS_KEY, *(json.dumps(mark) for mark in _marks))
        _marks.clear()

    execution._start = _after(execution._start, "started")
    execution._complete = _after(execution._complete, "completed")
    guards.job_lock = _marked_lock(guards.job_lock)  # type: ignore[assignment]
    guards.provider_call = _marked_call(guards.provider_call)  # type: ignore[assignment]


def _after(function: Callable[..., Any], what: str) -> Callable[..., Any]:
    def marked(job_id: uuid.UUID, *args: Any) -> Any:
        try:
            return function(job_id, *args)
        finally:
            _mark(what, job_id)

    return marked


def _marked_lock(
    job_lock: Callable[[uuid.UUID], AbstractContextManager[bool]],
) -> Callable[[uuid.UUID], AbstractContextManager[bool]]:
    @contextmanager
    def marked(job_id: uuid.UUID) -> Iterator[bool]:
        with job_lock(job_id) as locked:
            _mark("lock_taken", job_id)
            yield locked

    return marked


def _marked_call(
    provider_call: Callable[..., AbstractContextManager[None]],
) -> Callable[..., AbstractContextManager[None]]:
    @contextmanager
    def marked(job_id: uuid.UUID, *args: Any) -> Iterator[None]:
        with provider_call(job_id, *args):
            _mark("provider_in", job_id)
            yield
            _mark("provider_out", job_id)

    return marked


@dataclass(frozen=True)
class Segment:
    name: str
    p50_ms: float
    per_job_ms: float  # mean over jobs of the segment's sum over the job's steps
    samples: int


def read_marks(redis_url: str) -> list[tuple[float, int, str, str]]:
    raw: list[bytes] = redis.Redis.from_url(redis_url).lrange(MARKS_KEY, 0, -1)  # type: ignore[assignment]
    return [(float(t), int(pid), str(what), str(job)) for t, pid, what, job in map(json.loads, raw)]


def segments(marks: Sequence[tuple[float, int, str, str]]) -> list[Segment]:
    """Each task's segments, plus the dispatch gap between a job's consecutive tasks
    (one task's task_end to the next one's task_start, in whichever process)."""
    tasks = _tasks(marks)
    durations: dict[str, list[float]] = defaultdict(list)
    per_job: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for job_id, task in tasks:
        for name, begin, end in SEGMENTS:
            if begin in task and end in task:
                seconds = task[end] - task[begin]
                durations[name].append(seconds)
                per_job[job_id][name] += seconds
    for job_id, gap in _dispatch_gaps(tasks):
        durations["Celery dispatch between tasks"].append(gap)
        per_job[job_id]["Celery dispatch between tasks"] += gap
    jobs = len(per_job) or 1
    return [
        Segment(
            name,
            percentile(values, 50) * 1000,
            sum(job[name] for job in per_job.values()) / jobs * 1000,
            len(values),
        )
        for name, values in durations.items()
    ]


def _tasks(marks: Sequence[tuple[float, int, str, str]]) -> list[tuple[str, dict[str, float]]]:
    """One {mark: time} per task run: a process's marks from task_start to task_end."""
    tasks: list[tuple[str, dict[str, float]]] = []
    open_tasks: dict[int, tuple[str, dict[str, float]]] = {}
    for moment, pid, what, job_id in sorted(marks):
        if what == "task_start":
            open_tasks[pid] = (job_id, {})
        if pid in open_tasks:
            open_tasks[pid][1][what] = moment
        if what == "task_end" and pid in open_tasks:
            tasks.append(open_tasks.pop(pid))
    return tasks


def _dispatch_gaps(tasks: Sequence[tuple[str, dict[str, float]]]) -> Iterator[tuple[str, float]]:
    by_job: dict[str, list[dict[str, float]]] = defaultdict(list)
    for job_id, task in tasks:
        by_job[job_id].append(task)
    for job_id, runs in by_job.items():
        runs.sort(key=lambda task: task["task_start"])
        for before, after in itertools.pairwise(runs):
            yield job_id, after["task_start"] - before["task_end"]
