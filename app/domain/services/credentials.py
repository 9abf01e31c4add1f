"""Credential rotation jobs: asked for by an operator, or due by schedule
(CREDENTIAL_ROTATION_DAYS after the department's last rotation or creation)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select

from app.config import Settings
from app.domain import plans
from app.domain.kinds import JobKind
from app.domain.services.journal import journal
from app.domain.services.lifecycle import _locked_department, _require_changeable
from app.domain.services.provisioning import Conflict, NotFound, Submission, new_job, send
from app.domain.states import DepartmentStatus, JobState
from app.persistence.database import db
from app.persistence.models import Department, ProvisioningJob, utcnow

logger = logging.getLogger("provisioning")
SCHEDULER = "credential-rotation-schedule"


def request_rotation(department_id: str, actor: str | None, *, settings: Settings) -> Submission:
    steps = plans.plan_rotation()
    with db.transaction() as session:
        department = _locked_department(session, department_id)
        _require_changeable(session, department)
        if department.status != DepartmentStatus.ACTIVE:
            raise Conflict(f"department {department_id} is {department.status}; repair it first")
        kind = JobKind.ROTATE_CREDENTIALS
        job = new_job(session, department, kind, dict(department.config), actor, steps, settings)
        job.previous_config = dict(department.config)
        journal(session, job, "INFO", f"credential rotation requested by {actor or 'unknown'}")
        submission = Submission(job.id, department_id, True, job.state)
    send(settings)
    return submission


def due_for_rotation(
    last_rotated: dict[str, datetime], now: datetime, interval: timedelta
) -> list[str]:
    """Departments whose credentials are older than ``interval`` (plain data in,
    so the schedule is unit-tested without a database)."""
    return sorted(d for d, at in last_rotated.items() if now - at >= interval)


def _last_rotations() -> dict[str, datetime]:
    """ACTIVE departments -> when their credentials were last set (rotation or creation)."""
    rotated = (
        select(ProvisioningJob.department_pk, func.max(ProvisioningJob.completed_at).label("at"))
        .where(
            ProvisioningJob.kind == JobKind.ROTATE_CREDENTIALS,
            ProvisioningJob.state == JobState.COMPLETED,
        )
        .group_by(ProvisioningJob.department_pk)
        .subquery()
    )
    query = (
        select(Department.department_id, func.coalesce(rotated.c.at, Department.created_at))
        .outerjoin(rotated, rotated.c.department_pk == Department.id)
        .where(Department.status == DepartmentStatus.ACTIVE)
    )
    with db.transaction() as session:
        return {department_id: at for department_id, at in session.execute(query)}


def rotate_due(settings: Settings) -> list[str]:
    """What beat runs: a rotation job for each department that is due."""
    if settings.CREDENTIAL_ROTATION_DAYS <= 0:
        return []
    interval = timedelta(days=settings.CREDENTIAL_ROTATION_DAYS)
    started = []
    for department_id in due_for_rotation(_last_rotations(), utcnow(), interval):
        try:
            submission = request_rotation(department_id, SCHEDULER, settings=settings)
            started.append(str(submission.job_id))
        except (Conflict, NotFound) as exc:  # busy or gone: the next run tries again
            logger.info("scheduled rotation of %s not started: %s", department_id, exc)
    return started
