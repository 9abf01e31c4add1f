"""Read models: what the API and CLI show about jobs and departments."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from app.config import Settings
from app.domain import saga
from app.domain.states import TERMINAL_STATES, JobState, StepStatus
from app.persistence.database import db
from app.persistence.models import Department, JobLog, ProvisioningJob, utcnow

COMPONENT_KEYS: tuple[str, ...] = ("database", "oauth", "docker", "railway", "n8n", "gateway")
# Expected seconds per step before there is history to measure (issue #4 adds medians).
DEFAULT_STEP_SECONDS: dict[str, float] = {
    "validate_config": 0.2,
    "create_database": 1.0,
    "create_oauth": 0.5,
    "deploy_container": 3.0,
    "deploy_workflows": 3.0,
    "configure_gateway": 0.5,
    "validate_deployment": 1.5,
}
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
        job = session.get(ProvisioningJob, job_id)
        if job is None:
            return None
        logs = session.scalars(
            select(JobLog)
            .where(JobLog.job_id == job_id)
            .order_by(JobLog.id.desc())
            .limit(LOG_LINES)
        ).all()
        return {
            "provisioningId": str(job.id),
            "departmentId": job.department.department_id,
            "kind": job.kind,
            "status": job.state.lower(),
            "progress": _progress(job, settings),
            "currentStep": _current_step(job),
            "startedAt": iso(job.started_at or job.created_at),
            "estimatedCompletion": iso(_estimate(job)),
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
        verb = (
            "Removing"
            if running[0].status == StepStatus.COMPENSATING or job.kind == "deprovision"
            else None
        )
        description = saga.step(running[0].name).description
        return f"{verb} {running[0].name} resources" if verb else description
    texts = {
        JobState.PENDING: "Queued",
        JobState.COMPLETED: "Completed",
        JobState.FAILED: "Failed",
        JobState.ROLLING_BACK: "Rolling back",
        JobState.DEPROVISIONING: "Deprovisioning",
    }
    return texts.get(JobState(job.state), job.state.replace("_", " ").capitalize())


def _estimate(job: ProvisioningJob) -> datetime | None:
    if job.state in TERMINAL_STATES:
        return job.completed_at
    remaining = sum(
        DEFAULT_STEP_SECONDS.get(s.name, 1.0)
        for s in job.steps
        if s.status in (StepStatus.PENDING, StepStatus.IN_PROGRESS)
    )
    return utcnow() + timedelta(seconds=remaining)


def department_row(department: Department) -> dict[str, Any]:
    return {
        "id": str(department.id),
        "departmentId": department.department_id,
        "departmentName": department.department_name,
        "status": department.status,
        "railwayDeploymentUrl": department.container_url,
        "deploymentUrl": department.deployment_url,
        "createdAt": iso(department.created_at),
    }


def list_departments(
    status: str | None, page: int, per_page: int, department_id: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    query = select(Department)
    if status:
        query = query.where(Department.status == status)
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
