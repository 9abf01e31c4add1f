"""What a job says about itself: log lines, state moves and the events
subscribers hear once the transaction commits."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from app.domain import events, webhook_targets
from app.domain.states import JobState, check_transition
from app.persistence.models import JobLog, JobStep, ProvisioningJob, utcnow

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
            callback_url=webhook_targets.callback_url(job.config, job.department.config),
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
