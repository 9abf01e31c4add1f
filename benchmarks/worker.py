"""Celery app for the benchmark's worker: the real one, with provider calls timed.

Started as ``celery -A benchmarks.worker worker``. Only the name the saga's
forward steps and compensations look providers up by is rebound, in this
process (and the pool children it forks); no core file changes.
"""

from __future__ import annotations

import os
import uuid

from sqlalchemy import text

from app import create_app
from app.config import current
from app.domain.services import compensation, execution
from app.domain.services.guards import lock_key
from app.persistence.database import db
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


_LOCK = text("SELECT pg_try_advisory_lock(:k)")
_UNLOCK = text("SELECT pg_advisory_unlock(:k)")
_MARK = text(
    "UPDATE bench_durable_floor SET state = :state, attempts = attempts + 1,"
    " updated_at = now() WHERE id = :id"
)


@celery_app.task(name="bench.durable_step")
def durable_step(row_id: str, done_key: str | None = None) -> None:
    """A durable saga's floor: the least a step that records itself must do. It
    takes its job's lock, commits "running" before the (here absent) provider
    call and "done" after it, and gives the lock back. One pooled connection,
    each statement its own committed transaction, no ORM, log lines or events."""
    key = lock_key(uuid.UUID(row_id))
    with db.autocommit() as connection:
        connection.scalar(_LOCK, {"k": key})
        connection.execute(_MARK, {"id": row_id, "state": "IN_PROGRESS"})
        connection.execute(_MARK, {"id": row_id, "state": "COMPLETED"})
        connection.scalar(_UNLOCK, {"k": key})
    if done_key:
        _sink.mark(done_key)
