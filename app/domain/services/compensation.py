"""Undoing work: rollback of a failed provisioning job, and deprovisioning.

Both run the same compensations (each provider's ``delete``) in reverse saga
order. A compensation that cannot succeed is recorded and the walk goes on, so
the job's step records end up naming exactly what was left behind.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.domain import saga
from app.domain.outcomes import Outcome, Proceed, RetryLater, Stale
from app.domain.services import guards
from app.domain.services.jobs import (
    backoff,
    department_context,
    describe_error,
    journal,
    lock_job,
    record_resources,
    step_event,
    step_record,
    transition,
)
from app.domain.states import (
    STARTED_STEP_STATUSES,
    TERMINAL_STATES,
    DepartmentStatus,
    JobState,
    StepStatus,
)
from app.persistence.database import db
from app.persistence.models import JobStep, ProvisioningJob, utcnow
from app.providers.base import DepartmentContext, TransientProviderError
from app.providers.registry import provider

UNDOING_STATES = (JobState.ROLLING_BACK, JobState.DEPROVISIONING)


def steps_to_compensate(job: ProvisioningJob) -> list[str]:
    """Reverse order of the job's own steps; for a rollback only those that started.

    A repair only re-creates what was missing, so failing it undoes nothing.
    """
    if job.kind == "repair":
        return []
    if job.kind == "update":
        return _steps_to_restore(job)
    records = [r for r in reversed(job.steps) if saga.step(r.name).has_resources]
    if job.kind == "deprovision":
        return [r.name for r in records if r.status != StepStatus.COMPLETED]
    return [r.name for r in records if r.status in STARTED_STEP_STATUSES]


def _steps_to_restore(job: ProvisioningJob) -> list[str]:
    """Restoring re-applies the previous configuration, which is itself a forward
    convergence: forward order, and a restarted container needs its route again."""
    names = [
        r.name
        for r in job.steps
        if saga.step(r.name).has_resources and r.status in STARTED_STEP_STATUSES
    ]
    job_steps = {r.name for r in job.steps}
    if "deploy_container" in names and "configure_gateway" in job_steps:
        names = [n for n in names if n != "configure_gateway"] + ["configure_gateway"]
    return names


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
        if job.state not in UNDOING_STATES:
            if job.state in TERMINAL_STATES:
                return Stale(f"job is {job.state}")
            fail_running_step(session, job, "the step's task failed without recording why")
        job.generation += 1
        journal(session, job, "WARNING", "rolling back completed steps in reverse order")
        return job.generation, steps_to_compensate(job)


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
            with (
                guards.heartbeat(job_id, step_id, settings.HEARTBEAT_INTERVAL),
                guards.time_limit(settings.STEP_TIMEOUT, "compensation exceeded STEP_TIMEOUT"),
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
        if job is None or job.generation != generation or job.state not in UNDOING_STATES:
            return Stale("compensation no longer wanted")
        record = step_record(job, step_name)
        if record.status in (StepStatus.ROLLED_BACK, StepStatus.COMPENSATION_FAILED) or (
            job.kind == "deprovision" and record.status in (StepStatus.COMPLETED, StepStatus.FAILED)
        ):
            return Proceed()
        attempt = _mark_undoing(record, job.kind)
        step_event(session, job, record)
        journal(
            session, job, "INFO", f"removing {step_name} resources (attempt {attempt})", step_name
        )
        job.last_activity_at = utcnow()
        context = department_context(job, settings)
        restore = job.kind == "update" and job.previous_config is not None
        if restore:
            context.config = dict(job.previous_config or {})
        return record.id, context, restore


def _mark_undoing(record: JobStep, kind: str) -> int:
    record.heartbeat_at = utcnow()
    if kind == "deprovision":
        record.status = StepStatus.IN_PROGRESS
        record.started_at = record.started_at or utcnow()
        record.attempts += 1
        return record.attempts
    record.status = StepStatus.COMPENSATING
    record.compensation_attempts += 1
    return record.compensation_attempts


def _attempts(record: JobStep, kind: str) -> int:
    return record.attempts if kind == "deprovision" else record.compensation_attempts


def _after_error(job_id: uuid.UUID, step_name: str, exc: Exception, settings: Settings) -> Outcome:
    with db.transaction() as session:
        job = lock_job(session, job_id)
        assert job is not None
        record = step_record(job, step_name)
        attempts = _attempts(record, job.kind)
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
            return RetryLater(countdown, message)
        record.status = (
            StepStatus.FAILED if job.kind == "deprovision" else StepStatus.COMPENSATION_FAILED
        )
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
        record.status = (
            StepStatus.COMPLETED if job.kind == "deprovision" else StepStatus.ROLLED_BACK
        )
        record.finished_at = utcnow()
        step_event(session, job, record)
        record_resources(job.department, step_name, restored)
        verb = "restored to the previous configuration" if restored is not None else "removed"
        journal(session, job, "INFO", f"{step_name} resources {verb}", step_name)
        return Proceed()


def finish_compensation(job_id: uuid.UUID, generation: int) -> Outcome:
    """Ends a rollback (FAILED) or a deprovisioning (COMPLETED unless something stayed)."""
    with db.transaction() as session:
        job = lock_job(session, job_id)
        if job is None or job.generation != generation or job.state not in UNDOING_STATES:
            return Stale("nothing to finish")
        unremoved = (
            StepStatus.FAILED if job.kind == "deprovision" else StepStatus.COMPENSATION_FAILED
        )
        left = [s.name for s in job.steps if s.status == unremoved]
        _settle(session, job, left)
        return Proceed()


def _settle(session: Session, job: ProvisioningJob, left_behind: list[str]) -> None:
    department = job.department
    job.completed_at = utcnow()
    if job.kind == "deprovision" and not left_behind:
        transition(session, job, JobState.COMPLETED)
        department.status = DepartmentStatus.DEPROVISIONED
        department.deployment_url = None
        department.container_url = None
        journal(session, job, "INFO", f"department {department.department_id} deprovisioned")
        return
    final = JobState.CANCELLED if job.cancel_requested_at else JobState.FAILED
    transition(session, job, final)
    department.status = _department_status_after(job.kind, left_behind)
    if job.kind == "deprovision":
        job.error = {
            "step": left_behind[0],
            "attempt": None,
            "message": f"resources left behind: {', '.join(left_behind)}",
        }
    summary = f"left behind: {', '.join(left_behind)}" if left_behind else "nothing left behind"
    journal(session, job, "ERROR" if left_behind else "INFO", f"job {final}; {summary}")


def _department_status_after(kind: str, left_behind: list[str]) -> DepartmentStatus:
    """A failed update or repair leaves a running department: ACTIVE on the
    previous configuration, or DEGRADED where something could not be restored."""
    if kind == "update":
        return DepartmentStatus.DEGRADED if left_behind else DepartmentStatus.ACTIVE
    if kind == "repair":
        return DepartmentStatus.DEGRADED
    return DepartmentStatus.FAILED
