"""Running one step of a job: building for provision, update and repair jobs,
removing for deprovisioning ones (the job's policy says which).

The bookkeeping happens in short transactions around the provider call, never
across it, so a slow component never holds a database transaction open.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.domain import plans, saga
from app.domain.kinds import JobPolicy, OnStepFailure, StepAction, describe_step, policy_of
from app.domain.outcomes import Failed, Outcome, Proceed, RetryLater, Stale
from app.domain.services import guards
from app.domain.services.completion import finish_job
from app.domain.services.final_copies import before_removal
from app.domain.services.job_records import (
    department_context,
    job_timeout_reason,
    lock_job,
    record_resources,
    step_record,
)
from app.domain.services.journal import emit, journal, step_event, transition
from app.domain.services.retries import backoff, describe_error, max_retries
from app.domain.states import TERMINAL_STATES, JobState, StepStatus
from app.persistence.database import db
from app.persistence.models import ProvisioningJob, utcnow
from app.providers.base import DepartmentContext, TransientProviderError
from app.providers.registry import provider


@dataclass(frozen=True)
class StartedStep:
    step_id: int
    action: StepAction
    context: DepartmentContext
    budget: float
    timeout_reason: str


def run_step(job_id: uuid.UUID, generation: int, step_name: str, settings: Settings) -> Outcome:
    with guards.job_lock(job_id) as locked:
        if not locked:
            return Stale("another worker is acting on this job")
        started = _start(job_id, generation, step_name, settings)
        if not isinstance(started, StartedStep):
            return started
        component = provider(settings, saga.step(step_name).provider)
        try:
            with guards.provider_call(
                job_id,
                started.step_id,
                settings.HEARTBEAT_INTERVAL,
                started.budget,
                started.timeout_reason,
            ):
                if started.action is StepAction.CREATE:
                    outputs: dict[str, Any] | None = component.create(started.context)
                else:
                    before_removal(job_id, step_name, started.context, settings)
                    component.delete(started.context)
                    outputs = None  # removed: nothing of it is recorded any more
        except TransientProviderError as exc:
            return _after_transient_error(job_id, step_name, exc, settings)
        except Exception as exc:
            return fail_step(job_id, step_name, describe_error(exc))
        return _complete(job_id, step_name, outputs)


def _start(
    job_id: uuid.UUID, generation: int, step_name: str, settings: Settings
) -> StartedStep | Outcome:
    with db.transaction() as session:
        job = lock_job(session, job_id)
        if job is None:
            return Stale("job not found")
        policy = policy_of(job.kind)
        refusal = _refusal(session, job, policy, generation, step_name)
        if refusal is not None:
            return refusal
        if job.cancel_requested_at is not None:
            return cancel_at_safe_point(session, job)
        job.started_at = job.started_at or utcnow()
        remaining = (job.deadline_at - utcnow()).total_seconds() if job.deadline_at else 1e9
        if remaining <= 0:
            return _fail_in(session, job, step_name, job_timeout_reason(job))
        return _mark_running(session, job, policy, step_name, remaining, settings)


def _refusal(
    session: Session, job: ProvisioningJob, policy: JobPolicy, generation: int, step_name: str
) -> Outcome | None:
    """Why this message must not run the step, if it must not."""
    if job.generation != generation:
        return Stale(f"generation {generation} superseded by {job.generation}")
    if job.state in TERMINAL_STATES or job.state == JobState.ROLLING_BACK:
        return Stale(f"job is {job.state}")
    record = step_record(job, step_name)
    if not policy.is_finished(record.status):
        return None
    # A redelivered message: go on only if its successor has not started, so
    # that one duplicate cannot fork the chain.
    successor = plans.successor(job.steps, step_name)
    if successor is None:
        finish_job(session, job)  # the job's last step is done but it never ended
        return Proceed()
    return Proceed() if successor.status == StepStatus.PENDING else Stale("step already done")


def _mark_running(
    session: Session,
    job: ProvisioningJob,
    policy: JobPolicy,
    step_name: str,
    remaining: float,
    settings: Settings,
) -> StartedStep:
    definition = saga.step(step_name)
    transition(session, job, policy.step_state(definition))
    record = step_record(job, step_name)
    record.status = StepStatus.IN_PROGRESS
    record.attempts += 1
    record.started_at = record.started_at or utcnow()
    record.heartbeat_at = utcnow()
    step_event(session, job, record)
    what = describe_step(policy.action, definition)
    journal(session, job, "INFO", f"{what} (attempt {record.attempts})", step_name)
    if remaining < job.step_timeout:
        budget, reason = remaining, job_timeout_reason(job)
    else:
        budget, reason = job.step_timeout, f"step exceeded STEP_TIMEOUT={job.step_timeout:g}s"
    session.flush()
    return StartedStep(
        record.id,
        policy.action,
        department_context(job, settings),
        budget,
        f"{step_name} timed out on attempt {record.attempts}: {reason}",
    )


def _after_transient_error(
    job_id: uuid.UUID, step_name: str, exc: Exception, settings: Settings
) -> Outcome:
    with db.transaction() as session:
        job = lock_job(session, job_id)
        assert job is not None
        record = step_record(job, step_name)
        retries_left = max_retries(saga.step(step_name), settings) - (record.attempts - 1)
        if retries_left <= 0:
            reason = f"gave up after {record.attempts} attempts: {describe_error(exc)}"
            return _fail_in(session, job, step_name, reason)
        countdown = backoff(record.attempts, settings)
        record.error = describe_error(exc)
        job.last_activity_at = utcnow() + timedelta(seconds=countdown)
        record.heartbeat_at = job.last_activity_at
        journal(
            session,
            job,
            "WARNING",
            f"attempt {record.attempts} failed ({record.error}); retrying in {countdown:g}s",
            step_name,
        )
        # Counted where it is decided (metrics subscribe), not parsed from the log line.
        emit(session, job, "retry", step=step_name, action="step", attempt=record.attempts)
        return RetryLater(countdown, record.error)


def fail_step(job_id: uuid.UUID, step_name: str, reason: str) -> Outcome:
    with db.transaction() as session:
        job = lock_job(session, job_id)
        if job is None:
            return Stale("job not found")
        return _fail_in(session, job, step_name, reason)


def _fail_in(session: Session, job: ProvisioningJob, step_name: str, reason: str) -> Outcome:
    """Records the failure and, for a job that rolls back, moves it to
    ROLLING_BACK in the same transaction, so the database says "roll back"
    even if the errback message is lost."""
    policy = policy_of(job.kind)
    record = step_record(job, step_name)
    record.status = policy.failure
    record.error = reason
    record.finished_at = utcnow()
    step_event(session, job, record)
    if policy.on_step_failure is OnStepFailure.CARRY_ON:
        journal(session, job, "ERROR", f"could not finish {step_name}, left behind: {reason}")
        return _next(session, job, step_name)
    job.error = {"step": step_name, "attempt": record.attempts, "message": reason}
    journal(session, job, "ERROR", f"step {step_name} failed: {reason}", step_name)
    transition(session, job, JobState.ROLLING_BACK)
    return Failed(reason)


def _complete(job_id: uuid.UUID, step_name: str, outputs: dict[str, Any] | None) -> Outcome:
    with db.transaction() as session:
        job = lock_job(session, job_id)
        assert job is not None
        policy = policy_of(job.kind)
        record = step_record(job, step_name)
        record.status = policy.success
        record.finished_at = utcnow()
        record.outputs = outputs or {}
        record.error = None
        step_event(session, job, record)
        definition = saga.step(step_name)
        if definition.has_resources:
            record_resources(job.department, step_name, outputs)
        what = describe_step(policy.action, definition)
        journal(session, job, "INFO", f"{what}: done", step_name)
        return _next(session, job, step_name)


def _next(session: Session, job: ProvisioningJob, step_name: str) -> Outcome:
    """After a step: the job ends with its last one, or stops at a safe point."""
    if plans.successor(job.steps, step_name) is None:
        finish_job(session, job)
    elif job.cancel_requested_at is not None:
        return cancel_at_safe_point(session, job)
    return Proceed()


def cancel_at_safe_point(session: Session, job: ProvisioningJob) -> Outcome:
    """Between steps: stop going forward and undo what this job did."""
    reason = f"cancelled by {job.cancel_requested_by or 'unknown'}"
    job.error = {"step": None, "attempt": None, "message": reason}
    journal(session, job, "WARNING", f"{reason}; rolling back at a safe point")
    transition(session, job, JobState.ROLLING_BACK)
    return Failed(reason)
