"""Starting and finishing a rollback or deprovisioning."""

from __future__ import annotations

import uuid

from celery import Task, shared_task

from app.domain import dispatch
from app.domain.outcomes import Stale
from app.domain.services.compensation import begin_rollback, finish_compensation
from tasks.steps import SAGA_TASK, settle


@shared_task(name="provisioning.rollback", bind=True, **SAGA_TASK)
def rollback(self: Task, job_id: str, generation: int) -> str:
    """The link_error target: only a trigger; the database says what to undo."""
    claimed = begin_rollback(uuid.UUID(job_id), generation)
    if isinstance(claimed, Stale):
        return settle(self, claimed)
    new_generation, steps = claimed
    dispatch.current().compensations(uuid.UUID(job_id), new_generation, steps)
    return "dispatched"


@shared_task(name="provisioning.finish", bind=True, **SAGA_TASK)
def finish(self: Task, job_id: str, generation: int) -> str:
    return settle(self, finish_compensation(uuid.UUID(job_id), generation))
