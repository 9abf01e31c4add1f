"""Read models: what the API and CLI show about jobs and departments."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from app.config import Settings
from app.domain import saga
from app.domain.kinds import StepAction, describe_step, policy_of
from app.domain.services import admission, estimates
from app.domain.states import TERMINAL_STATES, DepartmentStatus, JobState, StepStatus
from app.persistence.database import db
from app.persistence.models import (
    Department,
    DepartmentConfigVersion,
    JobLog,
    ProvisioningJob,
    utcnow,
)

COMPONENT_KEYS: tuple[str, ...] = ("database", "oauth", "docker", "railway", "n8n", "gateway")
COMPONENT_STATUS: dict[str, str] = {
    StepStatus.PENDING: "pending",
    StepStatus.IN_PROGRESS: "in_progress",
    StepStatus.COMPLETED: "completed",
    StepStatus.FAILED: "failed",
    StepStatus.COMPENSATING: "rolling_back",
    StepStatus.ROLLED_BACK: "rolled_back",
    StepStatus.COMPENSATION_FAILED: "failed",
    StepStatus.SKIPPED: "skipped",
}
LOG_LINES = 200


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def container_component(settings: Settings) -> str:
    return "railway" if settings.CONTAINER_RUNTIME == "railway" else "docker"


def job_view(job_id: uuid.UUID, settings: Settings) -> dict[str, Any] | None:
    with db.transaction() as session:
        # One statement for the job, its department and its steps (joined eagerly:
        # lazy loads were a round trip each), one for the log tail.
        job = (
            session.execute(
                select(ProvisioningJob)
                .options(joinedload(ProvisioningJob.department), joinedload(ProvisioningJob.steps))
                .where(ProvisioningJob.id == job_id)
            )
            .unique()
            .scalar_one_or_none()
        )
        if job is None:
            return None
        logs = session.scalars(
            select(JobLog)
            .where(JobLog.job_id == job_id)
            .order_by(JobLog.id.desc())
            .limit(LOG_LINES)
        ).all()
        position = admission.queue_position(session, job)
        return {
            "provisioningId": str(job.id),
            "departmentId": job.department.department_id,
            "kind": job.kind,
            "status": job.state.lower(),
            "traceId": job.trace_id,
            "progress": _progress(job, settings),
            "currentStep": _waiting_text(position) if position else _current_step(job),
            "queuePosition": position,
            "startedAt": iso(job.started_at or job.created_at),
            "estimatedCompletion": iso(_estimate(session, job, position, settings)),
            "completedAt": iso(job.completed_at),
            "error": job.error,
            "steps": [_step_view(s) for s in job.steps],
            "logs": [f"[{iso(line.at)}] [{line.level}] {line.message}" for line in reversed(logs)],
        }


def _step_view(record: Any) -> dict[str, Any]:
    duration = (
        (record.finished_at - record.started_at).total_seconds()
        if record.finished_at and record.started_at
        else None
    )
    return {
        "name": record.name,
        "action": record.action,
        "status": record.status,
        "attempts": record.attempts,
        "compensationAttempts": record.compensation_attempts,
        "startedAt": iso(record.started_at),
        "finishedAt": iso(record.finished_at),
        "durationSeconds": duration,
        "error": record.error,
        "outputs": record.outputs,
    }


def _progress(job: ProvisioningJob, settings: Settings) -> dict[str, Any]:
    done = sum(1 for s in job.steps if s.status == StepStatus.COMPLETED)
    progress: dict[str, Any] = {"percentage": round(100 * done / max(len(job.steps), 1))}
    progress.update({key: "skipped" for key in COMPONENT_KEYS})
    for record in job.steps:
        component = saga.step(record.name).component
        if component == "container":
            component = container_component(settings)
        if component is not None:
            progress[component] = COMPONENT_STATUS.get(record.status, record.status)
    return progress


def _current_step(job: ProvisioningJob) -> str:
    running = [
        s for s in job.steps if s.status in (StepStatus.IN_PROGRESS, StepStatus.COMPENSATING)
    ]
    if running:
        action = policy_of(job.kind).action
        if running[0].status == StepStatus.COMPENSATING:
            action = StepAction.DELETE  # shown as removal, as the rollback's log says
        return describe_step(action, saga.step(running[0].name))
    texts = {
        JobState.PENDING: "Queued",
        JobState.COMPLETED: "Completed",
        JobState.FAILED: "Failed",
        JobState.ROLLING_BACK: "Rolling back",
        JobState.DEPROVISIONING: "Deprovisioning",
    }
    return texts.get(JobState(job.state), job.state.replace("_", " ").capitalize())


def _waiting_text(position: int) -> str:
    ahead = "next to start" if position == 1 else f"{position - 1} ahead"
    return f"Waiting for a place ({ahead})"


def _estimate(
    session: Session, job: ProvisioningJob, position: int | None, settings: Settings
) -> datetime | None:
    if job.state in TERMINAL_STATES:
        return job.completed_at
    own = estimates.estimate(session, job.steps)
    if position is None:
        return own
    return estimates.after_waiting(utcnow(), own, position, admission.capacity(settings))


def department_row(department: Department) -> dict[str, Any]:
    return {
        "id": str(department.id),
        "departmentId": department.department_id,
        "departmentName": department.department_name,
        "status": department.status,
        "railwayDeploymentUrl": department.container_url,
        "deploymentUrl": department.deployment_url,
        "createdAt": iso(department.created_at),
        "deletionProtection": department.deletion_protection,
        "configVersion": department.config_version,
        "drift": department.drift,
    }


def list_departments(
    status: str | None,
    page: int,
    per_page: int,
    department_id: str | None = None,
    include_deprovisioned: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    query = select(Department)
    if status:
        query = query.where(Department.status == status)
    elif not include_deprovisioned:
        query = query.where(Department.status != DepartmentStatus.DEPROVISIONED)
    if department_id:
        query = query.where(Department.department_id == department_id)
    with db.transaction() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(
            query.order_by(Department.created_at, Department.department_id)
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
        return [department_row(d) for d in rows], total


def latest_job_id(department_id: str) -> uuid.UUID | None:
    with db.transaction() as session:
        return session.scalar(
            select(ProvisioningJob.id)
            .join(Department)
            .where(Department.department_id == department_id)
            .order_by(ProvisioningJob.created_at.desc())
            .limit(1)
        )


def _department(session: Any, department_id: str) -> Department | None:
    return session.scalar(select(Department).where(Department.department_id == department_id))


def department_config(department_id: str) -> dict[str, Any] | None:
    with db.transaction() as session:
        department = _department(session, department_id)
        return dict(department.config) if department else None


def department_view(department_id: str) -> dict[str, Any] | None:
    with db.transaction() as session:
        department = _department(session, department_id)
        return department_row(department) if department else None


def config_history(department_id: str) -> list[dict[str, Any]] | None:
    with db.transaction() as session:
        department = _department(session, department_id)
        if department is None:
            return None
        versions = session.scalars(
            select(DepartmentConfigVersion)
            .where(DepartmentConfigVersion.department_pk == department.id)
            .order_by(DepartmentConfigVersion.version.desc())
        ).all()
        return [
            {
                "version": v.version,
                "config": v.config,
                "diff": v.diff,
                "actor": v.actor,
                "provisioningId": str(v.job_id) if v.job_id else None,
                "createdAt": iso(v.created_at),
            }
            for v in versions
        ]
