"""Cancel, update and repair: jobs that change a department after it exists."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain import plans, saga
from app.domain.kinds import JobKind, policy_of
from app.domain.services import admission
from app.domain.services.journal import journal
from app.domain.services.provisioning import (
    Conflict,
    NotFound,
    Submission,
    active_job,
    new_job,
    request_deprovision,
    send,
    submit_provisioning,
)
from app.domain.states import TERMINAL_STATES, DepartmentStatus, JobState
from app.persistence.database import db
from app.persistence.models import Department, ProvisioningJob, utcnow

CHANGEABLE_STATUSES = (DepartmentStatus.ACTIVE, DepartmentStatus.DEGRADED)


def request_cancel(job_id: uuid.UUID, actor: str | None) -> Submission:
    """Marks the job; its worker stops at the next step boundary and rolls back.
    A job still waiting for a place is let in at once: its first step sees the
    mark and ends it, rather than it waiting its turn only to be cancelled."""
    admitted = None
    with db.transaction() as session:
        job = session.scalar(
            select(ProvisioningJob).where(ProvisioningJob.id == job_id).with_for_update()
        )
        if job is None:
            raise NotFound(f"job {job_id} not found")
        if job.state in TERMINAL_STATES:
            raise Conflict(f"job {job_id} already ended {job.state}")
        if not policy_of(job.kind).cancellable or job.state == JobState.ROLLING_BACK:
            raise Conflict(f"job {job_id} is already undoing its work; it cannot be cancelled")
        if job.cancel_requested_at is None:
            job.cancel_requested_at = utcnow()
            job.cancel_requested_by = actor
            journal(session, job, "WARNING", f"cancel requested by {actor or 'unknown'}")
        if job.admitted_at is None:
            admitted = admission.admit(session, job)
        submission = Submission(job.id, job.department.department_id, True, job.state)
    if admitted is not None:
        admission.send_admitted(admitted)
    return submission


def _locked_department(session: Session, department_id: str) -> Department:
    department = session.scalar(
        select(Department).where(Department.department_id == department_id).with_for_update()
    )
    if department is None:
        raise NotFound(f"department {department_id} not found")
    return department


def _require_changeable(session: Session, department: Department) -> None:
    active = active_job(session, department)
    if active is not None:
        raise Conflict(f"department {department.department_id} has a {active.kind} job in flight")
    if department.status not in CHANGEABLE_STATUSES:
        raise Conflict(f"department {department.department_id} is {department.status}")


def request_update(
    department_id: str,
    new_config: dict[str, Any],
    deletion_protection: bool | None,
    actor: str | None,
    *,
    settings: Settings,
) -> Submission | None:
    """Starts an update job for what changed; None when nothing needs a job."""
    with db.transaction() as session:
        department = _locked_department(session, department_id)
        if deletion_protection is not None:
            department.deletion_protection = deletion_protection
        changed = [
            f for f in plans.UPDATABLE_FIELDS if new_config.get(f) != department.config.get(f)
        ]
        if not changed:
            return None
        steps = plans.plan_update(changed)
        job = _new_changing_job(
            session, department, JobKind.UPDATE, new_config, steps, actor, settings
        )
        job.previous_config = dict(department.config)
        journal(session, job, "INFO", f"update of {', '.join(changed)} requested by {actor}")
        submission = Submission(job.id, department_id, True, job.state)
    send(settings)
    return submission


def request_repair(
    department_id: str, failing_checks: list[str], actor: str | None, *, settings: Settings
) -> Submission:
    """Re-runs only the steps whose resources the failing checks found missing."""
    with db.transaction() as session:
        department = _locked_department(session, department_id)
        steps = plans.plan_repair(failing_checks)
        job = _new_changing_job(
            session, department, JobKind.REPAIR, department.config, steps, actor, settings
        )
        journal(
            session, job, "WARNING", f"repair of {', '.join(failing_checks)} requested by {actor}"
        )
        submission = Submission(job.id, department_id, True, job.state)
    send(settings)
    return submission


def _new_changing_job(
    session: Session,
    department: Department,
    kind: JobKind,
    config: dict[str, Any],
    steps: tuple[saga.SagaStep, ...],
    actor: str | None,
    settings: Settings,
) -> ProvisioningJob:
    _require_changeable(session, department)
    return new_job(session, department, kind, dict(config), actor, steps, settings)


def failing_checks(department_id: str, settings: Settings) -> list[str]:
    from app.domain.services.health import department_health

    result = department_health(department_id, settings)
    if result is None:
        raise NotFound(f"department {department_id} not found")
    return [c["name"] for c in result["checks"] if not c["healthy"]]


def retry_job(job_id: uuid.UUID, actor: str | None, settings: Settings) -> Submission:
    """A finished-and-failed job is retried as a new job of the same kind."""
    kind, config, department_id = _failed_job(job_id)
    if kind is JobKind.PROVISION:
        return submit_provisioning(config, actor, settings=settings)
    if kind is JobKind.DEPROVISION:
        return request_deprovision(department_id, actor, settings=settings)
    if kind is JobKind.ROTATE_CREDENTIALS:
        from app.domain.services.credentials import request_rotation

        return request_rotation(department_id, actor, settings=settings)
    if kind is JobKind.UPDATE:
        submission = request_update(department_id, config, None, actor, settings=settings)
        if submission is None:
            raise Conflict(f"department {department_id} already runs that configuration")
        return submission
    failing = failing_checks(department_id, settings)
    if not failing:
        raise Conflict(f"department {department_id} is healthy; nothing to repair")
    return request_repair(department_id, failing, actor, settings=settings)


def _failed_job(job_id: uuid.UUID) -> tuple[JobKind, dict[str, Any], str]:
    with db.transaction() as session:
        job = session.get(ProvisioningJob, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        if job.state not in TERMINAL_STATES:
            raise Conflict(f"job {job_id} is still {job.state}; the sweeper resumes stalled jobs")
        if job.state == JobState.COMPLETED:
            raise Conflict(f"job {job_id} completed; nothing to retry")
        return JobKind(job.kind), dict(job.config), job.department.department_id
