"""Celery tasks generated from the saga definition, so they can never disagree
with it: one per step, one per removal (a deprovisioning job's steps) and one
per compensation. Tasks carry ids only; the job's policy says what a step does."""

from __future__ import annotations

import uuid
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Ignore
from sqlalchemy.exc import InterfaceError, OperationalError

from app.config import current
from app.domain import saga
from app.domain.outcomes import Failed, Outcome, RetryLater, Stale
from app.domain.services.compensation import run_compensation
from app.domain.services.execution import run_step

# The orchestrator's own database unreachable is not the step's fault: try the
# task again (the database says what is done) rather than rolling back.
DATABASE_RETRY: dict[str, Any] = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 8,
}
# The options of every saga task (steps, removals, compensations, the rollback's
# start and finish). Nothing reads their results: the database is the record,
# and Flower shows states from the worker's events. Not storing them saves two
# Redis writes per task (STARTED and the return value).
SAGA_TASK: dict[str, Any] = {**DATABASE_RETRY, "ignore_result": True}


class StepFailed(Exception):
    """Raised so Celery marks the task failed and fires link_error (the rollback)."""


def settle(task: Task, outcome: Outcome) -> str:
    """Translates a domain outcome into what Celery understands."""
    if isinstance(outcome, Stale):
        raise Ignore()  # no result, no callbacks: the chain stops here
    if isinstance(outcome, RetryLater):
        raise task.retry(countdown=outcome.countdown, max_retries=None)
    if isinstance(outcome, Failed):
        raise StepFailed(outcome.reason)
    return "ok"


def _step_task(task_name: str, step_name: str) -> Task:
    @shared_task(name=task_name, bind=True, **SAGA_TASK)
    def run(self: Task, job_id: str, generation: int) -> str:
        return settle(self, run_step(uuid.UUID(job_id), generation, step_name, current()))

    return run


def _compensation_task(definition: saga.SagaStep) -> Task:
    @shared_task(name=f"provisioning.compensate.{definition.compensation}", bind=True, **SAGA_TASK)
    def run(self: Task, job_id: str, generation: int) -> str:
        outcome = run_compensation(uuid.UUID(job_id), generation, definition.name, current())
        return settle(self, outcome)

    return run


STEP_TASKS: dict[str, Any] = {
    step.name: _step_task(f"provisioning.step.{step.name}", step.name)
    for step in (*saga.SAGA, saga.ROTATE_CREDENTIALS)
}
# The same runner under names that say what a deprovisioning does (seen in Flower).
REMOVAL_TASKS: dict[str, Any] = {
    step.name: _step_task(f"provisioning.remove.{step.component}", step.name)
    for step in saga.RESOURCE_STEPS
}
COMPENSATION_TASKS: dict[str, Any] = {
    step.name: _compensation_task(step) for step in saga.RESOURCE_STEPS
}
