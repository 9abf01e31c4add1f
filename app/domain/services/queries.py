"""Read models: what the API and CLI show about jobs and departments."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from app.config import Settings
from app.domain import saga
from app.domain.kinds import StepAction, describe_step, policy_of
from app.domain.states import TERMINAL_STATES, DepartmentStatus, JobState, StepStatus
from app.persistence.database import db
from app.persistence.models import (
    Department,
    DepartmentConfigVersion,
    JobLog,
    JobStep,
    ProvisioningJob,
    utcnow,
)

COMPONENT_KEYS: tuple[str, ...] = ("database", "oauth", "docker", "railway", "n8n", "gateway")
# Expected seconds per step until job_steps has history to measure (see _estimate).
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
            "traceId": job.trace_id,
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


# Each step's median over its most recent completed runs: recent enough to follow
# a changing environment, few enough rows to keep the status view cheap.
ESTIMATE_HISTORY = 20


def _estimate(job: ProvisioningJob) -> datetime | None:
    if job.state in TERMINAL_STATES:
        return job.completed_at
    medians = _median_step_seconds(object_session(job))
    now = utcnow()
    remaining = sum(
        _expected_seconds(s, medians, now)
        for s in job.steps
        if s.status in (StepStatus.PENDING, StepStatus.IN_PROGRESS)
    )
    return now + timedelta(seconds=remaining)


def _expected_seconds(step: JobStep, medians: dict[tuple[str, str], float], now: datetime) -> float:
    expected = medians.get((step.name, step.action), DEFAULT_STEP_SECONDS.get(step.name, 1.0))
    if step.status == StepStatus.IN_PROGRESS and step.started_at:
        expected -= (now - step.started_at).total_seconds()
    return max(expected, 0.0)


def _median_step_seconds(session: Session | None) -> dict[tuple[str, str], float]:
    """(step name, action) -> median seconds of its last ESTIMATE_HISTORY completions."""
    if session is None:
        return {}
    recency = func.row_number().over(
        partition_by=(JobStep.name, JobStep.action), order_by=JobStep.finished_at.desc()
    )
    recent = (
        select(
            JobStep.name,
            JobStep.action,
            func.extract("epoch", JobStep.finished_at - JobStep.started_at).label("seconds"),
            recency.label("recency"),
        )
        .where(
            JobStep.status == StepStatus.COMPLETED,
            JobStep.started_at.is_not(None),
            JobStep.finished_at.is_not(None),
        )
        .subquery()
    )
    rows = session.execute(
        select(
            recent.c.name,
            recent.c.action,
            func.percentile_cont(0.5).within_group(recent.c.seconds),
        )
        .where(recent.c.recency <= ESTIMATE_HISTORY)
        .group_by(recent.c.name, recent.c.action)
    )
    return {(name, action): float(median) for name, action, median in rows}


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
