"""Celery app for the benchmark's worker: the real one, with provider calls timed.

Started as ``celery -A benchmarks.worker worker``. Only the name the saga's
forward steps and compensations look providers up by is rebound, in this
process (and the pool children it forks); no core file changes.
"""

from __future__ import annotations

import os

from app import create_app
from app.config import current
from app.domain.services import compensation, execution
from benchmarks import step_timeline
from benchmarks.timing import CallSink, timed_lookup

celery_app = create_app().extensions["celery"]
_sink = CallSink(current().REDIS_URL)
execution.provider = timed_lookup(execution.provider, _sink)  # type: ignore[assignment]
compensation.provider = timed_lookup(compensation.provider, _sink)  # type: ignore[assignment]
if os.environ.get(step_timeline.ENV_SWITCH) == "1":
    step_timeline.install(current().REDIS_URL)


@celery_app.task(name="bench.noop")
def noop(done_key: str | None = None) -> None:
    """Celery's floor: a task that does nothing, under the worker's own settings
    (acks_late, prefetch 1, events); the last of a chain reports it is done."""
    if done_key:
        _sink.mark(done_key)
