"""Guards around running a step: single ownership, liveness and time limits."""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import FrameType

from sqlalchemy import Connection, text, update
from sqlalchemy.exc import DBAPIError

from app.persistence.database import db
from app.persistence.models import JobStep, ProvisioningJob, utcnow


class StepTimeout(Exception):
    """The step ran past STEP_TIMEOUT or the job past MAX_PROVISIONING_TIME."""


def lock_key(job_id: uuid.UUID) -> int:
    return job_id.int & 0x7FFF_FFFF_FFFF_FFFF


@contextmanager
def job_lock(job_id: uuid.UUID) -> Iterator[bool]:
    """A session-level advisory lock held on its own connection while a worker
    acts on the job. PostgreSQL frees it when the holder's connection drops, so
    a SIGKILLed worker never leaves a job locked, and a second delivery of the
    same message cannot run alongside the first.

    The connection autocommits: a session-level lock needs no transaction, and
    each BEGIN and COMMIT around it was a round trip of its own. The work done
    under the lock runs its transactions on the same connection (db.pinned)."""
    with db.pinned() as connection:
        key = lock_key(job_id)
        locked = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))
        try:
            yield locked
        finally:
            if locked:
                _unlock(connection, key)


def _unlock(connection: Connection, key: int) -> None:
    """A connection that died meanwhile took its lock with it: nothing to undo,
    and the work done under the lock must not be reported as failed."""
    try:
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    except DBAPIError:
        connection.invalidate()


def is_job_locked(job_id: uuid.UUID) -> bool:
    with job_lock(job_id) as locked:
        return not locked


def touch(job_id: uuid.UUID, step_id: int | None, ahead: float = 0.0) -> None:
    """Records liveness; ``ahead`` marks a planned quiet spell (a retry's countdown)."""
    moment = utcnow() + timedelta(seconds=ahead)
    with db.transaction() as session:
        session.execute(
            update(ProvisioningJob)
            .where(ProvisioningJob.id == job_id)
            .values(last_activity_at=moment)
        )
        if step_id is not None:
            session.execute(
                update(JobStep).where(JobStep.id == step_id).values(heartbeat_at=moment)
            )


@contextmanager
def heartbeat(job_id: uuid.UUID, step_id: int, interval: float) -> Iterator[None]:
    """Beats in a thread while the provider call blocks the task's thread."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                touch(job_id, step_id)
            except Exception:  # noqa: S112 - a missed beat is retried next interval
                continue

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 1)


@contextmanager
def provider_call(
    job_id: uuid.UUID, step_id: int, heartbeat_interval: float, budget: float, reason: str
) -> Iterator[None]:
    """Around a provider call: heartbeats say the job is alive, and the call is
    cut off (StepTimeout, with ``reason``) after ``budget`` seconds."""
    with heartbeat(job_id, step_id, heartbeat_interval), time_limit(budget, reason):
        yield


@contextmanager
def time_limit(seconds: float, reason: str) -> Iterator[None]:
    """Raises StepTimeout in the running code after ``seconds``.

    Celery runs tasks in the main thread of a prefork child, where SIGALRM can
    interrupt a blocked provider call; elsewhere (threads pool, tests) the
    Celery hard time limit and the sweeper remain the backstop.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise StepTimeout(reason)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
