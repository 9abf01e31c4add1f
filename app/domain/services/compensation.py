"""Rolling back a job that failed or was cancelled.

What a rollback undoes comes from the job's policy (``plans.steps_to_compensate``):
a provisioning removes what it created, in reverse order; an update converges
back to the previous configuration; a repair undoes nothing. A compensation
that cannot succeed is recorded and the walk goes on, so the job's step
records end up naming exactly what was left behind.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.domain import plans, saga
from app.domain.kinds import OnStepFailure, Undo, policy_of
from app.domain.outcomes import Outcome, Proceed, RetryLater, Stale
from app.domain.services import guards
from app.domain.services.completion import settle_rollback
from app.domain.services.job_records import (
    department_context,
    lock_job,
    record_resources,
    step_record,
)
from app.domain.services.journal import emit, journal, step_event, transition
from app.domain.services.retries import backoff, describe_error
from app.domain.states import TERMINAL_STATES, JobState, StepStatus
from app.persistence.database import db
from app.persistence.models import ProvisioningJob, utcnow
from app.providers.base import DepartmentContext, TransientProviderError
from app.providers.registry import provider


def begin_rollback(job_id: uuid.UUID, generation: int) -> tuple[int, list[str]] | Stale:
    """Claims the rollback (bumping the generation) and lists what to undo."""
    with guards.job_lock(job_id) as locked:
        if not locked:
            return Stale("another worker is acting on this job; the sweeper will follow up")
        return _claim_rollback(job_id, generation)


def _claim_rollback(job_id: uuid.UUID, generation: int) -> tuple[int, list[str]] | Stale:
    with db.transaction() as session:
        job = lock_job(session, job_id)
        if job is None or job.generation != generation:
            return Stale("rollback already claimed or job gone")
        policy = policy_of(job.kind)
        if policy.on_step_failure is not OnStepFailure.ROLL_BACK:
            return Stale(f"a {job.kind} job never rolls back")
        if job.state != JobState.ROLLING_BACK:
            if job.state in TERMINAL_STATES:
                return Stale(f"job is {job.state}")
            fail_running_step(session, job, "the step's task failed without recording why")
        job.generation += 1
        journal(session, job, "WARNING", f"rolling back: {policy.undo}")
        return job.generation, plans.steps_to_compensate(policy, job.steps)


def fail_running_step(session: Session, job: ProvisioningJob, reason: str) -> None:
    """Used when a task died without its own bookkeeping (hard time limit, crash)."""
    running = [s for s in job.steps if s.status == StepStatus.IN_PROGRESS]
    for record in running:
        record.status = StepStatus.FAILED
        record.error = reason
        record.finished_at = utcnow()
        step_event(session, job, record)
    if job.error is None:
        failed = running[0] if running else None
        job.error = {
            "step": failed.name if failed else None,
            "attempt": failed.attempts if failed else 0,
            "message": reason,
        }
    transition(session, job, JobState.ROLLING_BACK)


def run_compensation(
    job_id: uuid.UUID, generation: int, step_name: str, settings: Settings
) -> Outcome:
    with guards.job_lock(job_id) as locked:
        if not locked:
            return Stale("another worker is acting on this job")
        started = _start(job_id, generation, step_name, settings)
        if not isinstance(started, tuple):
            return started
        step_id, context, restore = started
        component = provider(settings, saga.step(step_name).provider)
        try:
            with guards.provider_call(
                job_id,
                step_id,
                settings.HEARTBEAT_INTERVAL,
                settings.STEP_TIMEOUT,
                "compensation exceeded STEP_TIMEOUT",
            ):
                # An update is undone by converging back to the previous
                # configuration; anything else by removing what was made.
                restored = component.create(context) if restore else None
                if not restore:
                    component.delete(context)
        except Exception as exc:
            return _after_error(job_id, step_name, exc, settings)
        return _record_success(job_id, step_name, restored)


def _start(
    job_id: uuid.UUID, generation: int, step_name: str, settings: Settings
) -> tuple[int, DepartmentContext, bool] | Outcome:
    with db.transaction() as session:
        job = lock_job(session, job_id)
        if job is None or job.generation != generation or job.state != JobState.ROLLING_BACK:
            return Stale("compensation no longer wanted")
        record = step_record(job, step_name)
        if record.status in (StepStatus.ROLLED_BACK, StepStatus.COMPENSATION_FAILED):
            return Proceed()
        record.status = StepStatus.COMPENSATING
        record.compensation_attempts += 1
        record.heartbeat_at = utcnow()
        step_event(session, job, record)
        attempt = record.compensation_attempts
        journal(
            session, job, "INFO", f"removing {step_name} resources (attempt {attempt})", step_name
        )
        job.last_activity_at = utcnow()
        context = department_context(job, settings)
        restore = policy_of(job.kind).undo is Undo.RESTORE and job.previous_config is not None
        if restore:
            context.config = dict(job.previous_config or {})
        return record.id, context, restore


def _after_error(job_id: uuid.UUID, step_name: str, exc: Exception, settings: Settings) -> Outcome:
    with db.transaction() as session:
        job = lock_job(session, job_id)
        assert job is not None
        record = step_record(job, step_name)
        attempts = record.compensation_attempts
        message = describe_error(exc)
        if isinstance(exc, TransientProviderError) and attempts <= settings.RETRY_MAX:
            countdown = backoff(attempts, settings)
            job.last_activity_at = utcnow() + timedelta(seconds=countdown)
            journal(
                session,
                job,
                "WARNING",
                f"removing {step_name} failed ({message}); retrying in {countdown:g}s",
                step_name,
            )
            emit(session, job, "retry", step=step_name, action="compensation", attempt=attempts)
            return RetryLater(countdown, message)
        record.status = StepStatus.COMPENSATION_FAILED
        record.error = f"compensation failed: {message}"
        record.finished_at = utcnow()
        step_event(session, job, record)
        journal(
            session,
            job,
            "ERROR",
            f"could not remove {step_name} resources, left behind: {message}",
            step_name,
        )
        return Proceed()


def _record_success(job_id: uuid.UUID, step_name: str, restored: dict[str, Any] | None) -> Outcome:
    with db.transaction() as session:
        job = lock_job(session, job_id)
        assert job is not None
        record = step_record(job, step_name)
        record.status = StepStatus.ROLLED_BACK
        record.finished_at = utcnow()
        step_event(session, job, record)
        record_resources(job.department, step_name, restored)
        verb = "restored to the previous configuration" if restored is not None else "removed"
        journal(session, job, "INFO", f"{step_name} resources {verb}", step_name)
        return Proceed()


def finish_compensation(job_id: uuid.UUID, generation: int) -> Outcome:
    """Ends a rollback: FAILED (or CANCELLED), naming what could not be undone."""
    with db.transaction() as session:
        job = lock_job(session, job_id)
        if job is None or job.generation != generation or job.state != JobState.ROLLING_BACK:
            return Stale("nothing to finish")
        left = [s.name for s in job.steps if s.status == StepStatus.COMPENSATION_FAILED]
        settle_rollback(session, job, left)
        return Proceed()
