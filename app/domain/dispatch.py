"""How the domain asks for work to be queued, without knowing about Celery.

``tasks.canvas.CeleryDispatcher`` is the implementation; messages are sent only
after the transaction that bumped the job's generation has committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from app.domain.kinds import JobPolicy, OnStepFailure


class Dispatcher(Protocol):
    def forward(self, job_id: uuid.UUID, generation: int, steps: Sequence[str]) -> None:
        """The steps in order; a failure anywhere starts the rollback."""
        ...

    def removals(self, job_id: uuid.UUID, generation: int, steps: Sequence[str]) -> None:
        """The steps in order; a failure is recorded and the walk goes on."""
        ...

    def rollback(self, job_id: uuid.UUID, generation: int) -> None: ...

    def compensations(self, job_id: uuid.UUID, generation: int, steps: Sequence[str]) -> None: ...

    def webhook(self, delivery_id: int, countdown: float | None = None) -> None:
        """One attempt at a webhook delivery (app/domain/services/webhooks.py)."""
        ...

    def backlog(self) -> int:
        """Task messages waiting in the broker for a free worker."""
        ...

    def joining(self, trace_parent: str | None) -> AbstractContextManager[None]:
        """Messages sent inside belong to the trace a job was submitted in (a W3C
        traceparent), whichever process sends them: the worker admitting a waiting
        job, the sweeper resuming a stalled one."""
        ...


_current: Dispatcher | None = None


def install(dispatcher: Dispatcher) -> None:
    global _current
    _current = dispatcher


def current() -> Dispatcher:
    if _current is None:
        raise RuntimeError("no dispatcher installed: call celery_init_app() first")
    return _current


def send_steps(
    policy: JobPolicy,
    job_id: uuid.UUID,
    generation: int,
    steps: Sequence[str],
    trace_parent: str | None = None,
) -> None:
    """Queues a job's own steps the way its kind runs them, in the job's trace."""
    with current().joining(trace_parent):
        if policy.on_step_failure is OnStepFailure.ROLL_BACK:
            current().forward(job_id, generation, steps)
        else:
            current().removals(job_id, generation, steps)
