"""The sweeper: finds jobs nobody is working on and sets them going again.

Celery loses errbacks and messages when a worker is SIGKILLed, hits a hard
time limit, or Redis restarts. A job is stalled when its last activity is older
than STALL_TIMEOUT and no worker holds its advisory lock. Then, by the
database's record alone:
- forward states: past the deadline -> roll back; else resume from the first
  step that has not completed and checked out;
- ROLLING_BACK / DEPROVISIONING: run the remaining compensations again.
Each action bumps the job's generation, so the lost messages, if they do turn
up later, are ignored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain import dispatch, saga
from app.domain.services import guards
from app.domain.services.compensation import fail_running_step, steps_to_compensate
from app.domain.services.jobs import department_context, journal, lock_job
from app.domain.states import TERMINAL_STATES, JobState, StepStatus
from app.observability.metrics import sweeper_action
from app.persistence.database import db
from app.persistence.models import ProvisioningJob, utcnow
from app.providers.registry import provider

BUSY_STEP_STATUSES = (StepStatus.IN_PROGRESS, StepStatus.COMPENSATING)
QUEUED_BACKSTOP_FACTOR = 10


@dataclass(frozen=True)
class SweepAction:
    job_id: uuid.UUID
    action: str  # "resume", "rollback", "compensate"
    generation: int
    steps: tuple[str, ...]


def stalled_job_ids(settings: Settings) -> list[uuid.UUID]:
    cutoff = utcnow() - timedelta(seconds=settings.STALL_TIMEOUT)
    with db.transaction() as session:
        return list(
            session.scalars(
                select(ProvisioningJob.id)
                .where(
                    ProvisioningJob.state.not_in([s.value for s in TERMINAL_STATES]),
                    ProvisioningJob.last_activity_at < cutoff,
                )
                .order_by(ProvisioningJob.last_activity_at)
            )
        )


def sweep(settings: Settings) -> list[SweepAction]:
    actions = []
    candidates = stalled_job_ids(settings)
    backlog = _backlog() if candidates else 0
    for job_id in candidates:
        with guards.job_lock(job_id) as locked:
            action = _decide(job_id, settings, backlog) if locked else None
        # Sent only after the lock is released: the worker must be able to take it.
        if action is not None:
            _send(action)
            sweeper_action(action.action)
            actions.append(action)
    return actions


def _backlog() -> int:
    try:
        return dispatch.current().backlog()
    except Exception:
        return 0  # cannot tell: judge by the database alone


def _probably_queued(job: ProvisioningJob, backlog: int, settings: Settings) -> bool:
    """Between steps, with messages waiting for a free worker, a quiet job is most
    likely queued, not lost: re-sending it would only push it to the back of the
    queue. A step left running with no lock held is a dead worker whatever the
    queue holds, and the deadline and a long backstop still apply."""
    if backlog == 0 or any(s.status in BUSY_STEP_STATUSES for s in job.steps):
        return False
    backstop = utcnow() - timedelta(seconds=QUEUED_BACKSTOP_FACTOR * settings.STALL_TIMEOUT)
    past_deadline = job.deadline_at is not None and utcnow() >= job.deadline_at
    return job.last_activity_at >= backstop and not past_deadline


def _decide(job_id: uuid.UUID, settings: Settings, backlog: int = 0) -> SweepAction | None:
    resume_from = _first_step_to_run(job_id, settings)
    with db.transaction() as session:
        job = lock_job(session, job_id)
        cutoff = utcnow() - timedelta(seconds=settings.STALL_TIMEOUT)
        if job is None or job.state in TERMINAL_STATES or job.last_activity_at >= cutoff:
            return None
        if _probably_queued(job, backlog, settings):
            return None
        job.generation += 1
        job.resume_count += 1
        job.last_activity_at = utcnow()
        if job.state not in (JobState.ROLLING_BACK, JobState.DEPROVISIONING):
            if job.deadline_at is not None and utcnow() >= job.deadline_at:
                _time_out(session, job)
            else:
                return _resume(session, job, resume_from)
        journal(session, job, "WARNING", "sweeper: job stalled; resuming its compensations")
        action = "rollback" if job.state == JobState.ROLLING_BACK else "compensate"
        return SweepAction(job.id, action, job.generation, tuple(steps_to_compensate(job)))


def _time_out(session: Session, job: ProvisioningJob) -> None:
    limit = (job.deadline_at - job.created_at).total_seconds() if job.deadline_at else 0
    fail_running_step(session, job, f"job exceeded MAX_PROVISIONING_TIME={round(limit):g}s")


def _resume(session: Session, job: ProvisioningJob, resume_from: str | None) -> SweepAction:
    names = [s.name for s in job.steps]
    # Nothing left to run can only mean the last step's result was lost: redo it.
    start = names.index(resume_from) if resume_from in names else len(names) - 1
    for record in job.steps[start:]:
        if record.status == StepStatus.COMPLETED:
            record.status = StepStatus.PENDING  # it no longer checks out: run it again
    steps = tuple(names[start:])
    journal(
        session, job, "WARNING", f"sweeper: job stalled (no live worker); resuming at {steps[0]}"
    )
    return SweepAction(job.id, "resume", job.generation, steps)


def _first_step_to_run(job_id: uuid.UUID, settings: Settings) -> str | None:
    """The first step not completed, or completed but whose resources no longer
    check out (checked outside any transaction: checks talk to components)."""
    with db.transaction() as session:
        job = session.get(ProvisioningJob, job_id)
        if job is None or job.kind != "provision":
            return None
        records = [(s.name, s.status) for s in job.steps]
        context = department_context(job, settings)
    for name, status in records:
        if status != StepStatus.COMPLETED:
            return name
        definition = saga.step(name)
        if (
            definition.has_resources
            and not provider(settings, definition.provider).check(context).healthy
        ):
            return name
    return None


def _send(action: SweepAction) -> None:
    dispatcher = dispatch.current()
    if action.action == "resume":
        dispatcher.forward(action.job_id, action.generation, action.steps)
    else:
        dispatcher.compensations(action.job_id, action.generation, action.steps)
