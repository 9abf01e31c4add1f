"""Cancel, update and repair: jobs that change a department after it exists."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain import dispatch, lifecycle, saga
from app.domain.services.jobs import journal
from app.domain.services.provisioning import (
    Conflict,
    NotFound,
    Submission,
    active_job,
    dispatch_safely,
    new_job,
)
from app.domain.states import TERMINAL_STATES, DepartmentStatus, JobState
from app.persistence.database import db
from app.persistence.models import Department, ProvisioningJob, utcnow

CHANGEABLE_STATUSES = (DepartmentStatus.ACTIVE, DepartmentStatus.DEGRADED)


def request_cancel(job_id: uuid.UUID, actor: str | None) -> Submission:
    """Marks the job; its worker stops at the next step boundary and rolls back."""
    with db.transaction() as session:
        job = session.scalar(
            select(ProvisioningJob).where(ProvisioningJob.id == job_id).with_for_update()
        )
        if job is None:
            raise NotFound(f"job {job_id} not found")
        if job.state in TERMINAL_STATES:
            raise Conflict(f"job {job_id} already ended {job.state}")
        if job.kind == "deprovision" or job.state == JobState.ROLLING_BACK:
            raise Conflict(f"job {job_id} is already undoing its work; it cannot be cancelled")
        if job.cancel_requested_at is None:
            job.cancel_requested_at = utcnow()
            job.cancel_requested_by = actor
            journal(session, job, "WARNING", f"cancel requested by {actor or 'unknown'}")
        return Submission(job.id, job.department.department_id, True, job.state)


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
) -> Submission | None:
    """Starts an update job for what changed; None when nothing needs a job."""
    with db.transaction() as session:
        department = _locked_department(session, department_id)
        if deletion_protection is not None:
            department.deletion_protection = deletion_protection
        changed = [
            f for f in lifecycle.UPDATABLE_FIELDS if new_config.get(f) != department.config.get(f)
        ]
        if not changed:
            return None
        steps = lifecycle.steps_for_update(changed)
        job = _new_changing_job(session, department, "update", new_config, steps, actor)
        job.previous_config = dict(department.config)
        journal(session, job, "INFO", f"update of {', '.join(changed)} requested by {actor}")
        submission = Submission(job.id, department_id, True, job.state)
    _dispatch(submission, steps)
    return submission


def request_repair(department_id: str, failing_checks: list[str], actor: str | None) -> Submission:
    """Re-runs only the steps whose resources the failing checks found missing."""
    with db.transaction() as session:
        department = _locked_department(session, department_id)
        steps = lifecycle.steps_for_repair(failing_checks)
        job = _new_changing_job(session, department, "repair", department.config, steps, actor)
        journal(
            session, job, "WARNING", f"repair of {', '.join(failing_checks)} requested by {actor}"
        )
        submission = Submission(job.id, department_id, True, job.state)
    _dispatch(submission, steps)
    return submission


def _new_changing_job(
    session: Session,
    department: Department,
    kind: str,
    config: dict[str, Any],
    steps: tuple[saga.SagaStep, ...],
    actor: str | None,
) -> ProvisioningJob:
    _require_changeable(session, department)
    return new_job(session, department, kind, dict(config), actor, steps)


def _dispatch(submission: Submission, steps: tuple[saga.SagaStep, ...]) -> None:
    names = [s.name for s in steps]
    dispatch_safely(lambda: dispatch.current().forward(submission.job_id, 1, names))


def failing_checks(department_id: str, settings: Settings) -> list[str]:
    from app.domain.services.health import department_health

    result = department_health(department_id, settings)
    if result is None:
        raise NotFound(f"department {department_id} not found")
    return [c["name"] for c in result["checks"] if not c["healthy"]]
