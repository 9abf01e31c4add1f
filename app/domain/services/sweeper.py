"""The sweeper: finds jobs nobody is working on and sets them going again.

Celery loses errbacks and messages when a worker is SIGKILLed, hits a hard
time limit, or Redis restarts. A job is stalled when its last activity is older
than STALL_TIMEOUT and no worker holds its advisory lock. Then, by the
database's record alone, ``recovery.choose`` decides from the job's policy:
resume it where its record says, time it out, or finish its rollback. Each
action bumps the job's generation, so the lost messages, if they do turn up
later, are ignored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain import dispatch, recovery, saga
from app.domain.kinds import JobKind, policy_of
from app.domain.plans import StepSnapshot
from app.domain.recovery import SweepVerb
from app.domain.services import admission, guards
from app.domain.services.compensation import fail_running_step
from app.domain.services.job_records import department_context, job_timeout_reason, lock_job
from app.domain.services.journal import journal
from app.domain.states import TERMINAL_STATES, JobState, StepStatus
from app.persistence.database import db
from app.persistence.models import ProvisioningJob, utcnow
from app.providers.registry import provider

BUSY_STEP_STATUSES = (StepStatus.IN_PROGRESS, StepStatus.COMPENSATING)
QUEUED_BACKSTOP_FACTOR = 10


@dataclass(frozen=True)
class SweepAction:
    job_id: uuid.UUID
    kind: JobKind
    action: SweepVerb
    generation: int
    steps: tuple[str, ...]
    trace_parent: str | None


def stalled_job_ids(settings: Settings) -> list[uuid.UUID]:
    cutoff = utcnow() - timedelta(seconds=settings.STALL_TIMEOUT)
    with db.transaction() as session:
        return list(
            session.scalars(
                select(ProvisioningJob.id)
                .where(
                    ProvisioningJob.state.not_in([s.value for s in TERMINAL_STATES]),
                    # A job waiting for a place is quiet by design, not stalled.
                    ProvisioningJob.admitted_at.is_not(None),
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
            actions.append(action)
    # The backstop for admissions: a job that ended in a process that died
    # before it could hand its place on, or a submission whose API crashed.
    admission.start_waiting_jobs(settings)
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
        policy = policy_of(job.kind)
        past_deadline = job.deadline_at is not None and utcnow() >= job.deadline_at
        choice = recovery.choose(policy, JobState(job.state), job.steps, past_deadline, resume_from)
        _apply(session, job, choice)
        return SweepAction(
            job.id, policy.kind, choice.verb, job.generation, choice.steps, job.trace_parent
        )


def _apply(session: Session, job: ProvisioningJob, choice: recovery.Choice) -> None:
    """Writes what the choice means before its messages go out."""
    if choice.verb is SweepVerb.RESUME:
        for record in job.steps:
            if record.name in choice.rerun:
                record.status = StepStatus.PENDING  # it no longer checks out: run it again
        journal(
            session,
            job,
            "WARNING",
            f"sweeper: job stalled (no live worker); resuming at {choice.steps[0]}",
        )
        return
    if choice.verb is SweepVerb.TIME_OUT:
        fail_running_step(session, job, job_timeout_reason(job))
    journal(session, job, "WARNING", "sweeper: job stalled; resuming its compensations")


def _first_step_to_run(job_id: uuid.UUID, settings: Settings) -> str | None:
    """Read in a short transaction; the checks talk to components outside it."""
    with db.transaction() as session:
        job = session.get(ProvisioningJob, job_id)
        if job is None:
            return None
        policy = policy_of(job.kind)
        records = [StepSnapshot(s.name, s.status) for s in job.steps]
        context = department_context(job, settings)

    def checks_out(name: str) -> bool:
        definition = saga.step(name)
        if not definition.has_resources:
            return True
        return provider(settings, definition.provider).check(context).healthy

    return recovery.first_step_to_run(policy, records, checks_out)


def _send(action: SweepAction) -> None:
    """In the job's own trace: a resumed job stays one trace with its first run."""
    if action.action is SweepVerb.RESUME:
        policy = policy_of(action.kind)
        steps = action.steps
        dispatch.send_steps(policy, action.job_id, action.generation, steps, action.trace_parent)
        return
    with dispatch.current().joining(action.trace_parent):
        dispatch.current().compensations(action.job_id, action.generation, action.steps)
