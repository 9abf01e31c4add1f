"""Small building blocks shared by the step, rollback and sweeper services."""

from __future__ import annotations

import logging
import random
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain import events
from app.domain.saga import SagaStep
from app.domain.states import JobState, check_transition
from app.persistence.models import Department, JobLog, JobStep, ProvisioningJob, utcnow
from app.persistence.secrets import DepartmentSecrets
from app.providers.base import DepartmentContext

logger = logging.getLogger("provisioning")


def journal(
    session: Session, job: ProvisioningJob, level: str, message: str, step: str | None = None
) -> None:
    """One line in the job's log (shown by the status endpoint) and the process log."""
    session.add(JobLog(job_id=job.id, level=level, message=message, step=step))
    emit(session, job, "log", level=level, message=message, step=step)
    logger.log(
        logging.getLevelName(level),
        message,
        extra={
            "provisioningId": str(job.id),
            "departmentId": job.department.department_id,
            "step": step,
        },
    )


def transition(session: Session, job: ProvisioningJob, target: JobState) -> None:
    """The only place a job's state is written: illegal moves raise first."""
    check_transition(JobState(job.state), target)
    if job.state != target:
        journal(session, job, "INFO", f"state {job.state} -> {target}")
        emit(session, job, "state", previous=job.state, state=str(target))
        job.state = target
    job.last_activity_at = utcnow()


def emit(session: Session, job: ProvisioningJob, event_type: str, **data: Any) -> None:
    """Queues an event for subscribers; it is published if this transaction commits."""
    events.record(
        session,
        events.JobEvent(
            type=event_type,
            job_id=str(job.id),
            department_id=job.department.department_id,
            kind=job.kind,
            at=utcnow(),
            data=data,
        ),
    )


def step_event(session: Session, job: ProvisioningJob, record: JobStep) -> None:
    duration = (
        (record.finished_at - record.started_at).total_seconds()
        if record.finished_at and record.started_at
        else None
    )
    emit(
        session,
        job,
        "step",
        step=record.name,
        status=record.status,
        attempts=record.attempts,
        durationSeconds=duration,
        error=record.error,
    )


def lock_job(session: Session, job_id: uuid.UUID) -> ProvisioningJob | None:
    """The job row, locked for this transaction, with its department."""
    return session.scalar(
        select(ProvisioningJob).where(ProvisioningJob.id == job_id).with_for_update()
    )


def step_record(job: ProvisioningJob, name: str) -> JobStep:
    return next(s for s in job.steps if s.name == name)


def department_context(
    job: ProvisioningJob, settings: Settings, department: Department | None = None
) -> DepartmentContext:
    """What a provider sees when acting for ``job`` (the job's config snapshot)."""
    return context_for(department or job.department, settings, job.config)


def context_for(
    department: Department, settings: Settings, config: dict[str, Any] | None = None
) -> DepartmentContext:
    return DepartmentContext(
        department_id=department.department_id,
        config=dict(config if config is not None else department.config),
        resources={k: dict(v) for k, v in (department.resources or {}).items()},
        secrets=DepartmentSecrets(department.id, settings.SECRETS_KEY),
    )


def record_resources(department: Department, step: str, outputs: dict[str, Any] | None) -> None:
    """Keeps ``department.resources`` equal to what exists; None means removed."""
    resources = dict(department.resources or {})
    if outputs is None:
        resources.pop(step, None)
    else:
        resources[step] = outputs
    department.resources = resources


def max_retries(step: SagaStep, settings: Settings) -> int:
    if step.name == "validate_deployment":
        return settings.VALIDATION_RETRY_MAX
    return settings.RETRY_MAX


def backoff(attempt: int, settings: Settings) -> float:
    """Exponential backoff with jitter: base * factor^(attempt-1) * (1 +- jitter)."""
    delay = settings.RETRY_BASE * settings.RETRY_FACTOR ** max(attempt - 1, 0)
    jitter = random.uniform(-settings.RETRY_JITTER, settings.RETRY_JITTER)
    return round(max(delay * (1 + jitter), 0.05), 3)


def describe_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:2000]
