"""Admission: how many jobs run at once, and who waits for a place.

Every step of every job shares the same Celery workers. Without a bound, a
burst of 300 submissions starts 300 jobs whose steps take turns in one queue:
each job advances a step per pass over the whole queue, so all of them finish
late together and, past MAX_PROVISIONING_TIME, all roll back together.

Instead at most ``capacity`` jobs run; later ones stay PENDING in submission
order with a queue position in their status, and their time budget starts
when they are admitted. Admission happens when a job is submitted, when a job
ends (a subscriber to the committed state change), when a waiting job is
cancelled, and on every sweep (the backstop for a message lost in between).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import ColumnElement, Connection, Select, func, select, text
from sqlalchemy.orm import Session

from app import config
from app.config import Settings
from app.domain import dispatch, events
from app.domain.kinds import JobKind, policy_of
from app.domain.services.journal import journal
from app.domain.states import TERMINAL_STATES
from app.persistence.database import db
from app.persistence.models import ProvisioningJob, utcnow

logger = logging.getLogger("provisioning.admission")

# pg_advisory_xact_lock(int, int): a key space apart from the jobs' bigint locks.
ADMISSION_LOCK = (0x504F, 1)  # "PO", admission
_ENDED = [s.value for s in TERMINAL_STATES]


def capacity(settings: Settings) -> int:
    return settings.MAX_ACTIVE_JOBS or 2 * settings.WORKER_CONCURRENCY


def free_places(places: int, running: int) -> int:
    """How many waiting jobs may start now (a decision, no I/O)."""
    return max(places - running, 0)


def moved_deadline(
    created_at: datetime, deadline_at: datetime | None, admitted_at: datetime
) -> datetime | None:
    """The same budget, counted from admission instead of submission."""
    return None if deadline_at is None else admitted_at + (deadline_at - created_at)


@dataclass(frozen=True)
class Admitted:
    job_id: uuid.UUID
    kind: JobKind
    generation: int
    steps: tuple[str, ...]
    trace_parent: str | None


def start_waiting_jobs(settings: Settings) -> list[Admitted]:
    """Admits what fits, then queues the admitted jobs' steps after the commit."""
    admitted = _admit(settings)
    for job in admitted:
        send_admitted(job)
    return admitted


def _admit(settings: Settings) -> list[Admitted]:
    with db.transaction() as session:
        # One admitter at a time, or two could each fill the same free place.
        classid, objid = ADMISSION_LOCK
        session.execute(text("SELECT pg_advisory_xact_lock(:c, :o)"), {"c": classid, "o": objid})
        running = session.scalar(
            select(func.count())
            .select_from(ProvisioningJob)
            .where(ProvisioningJob.admitted_at.is_not(None), _not_ended())
        )
        places = free_places(capacity(settings), running or 0)
        if places == 0:
            return []
        jobs = session.scalars(_waiting().limit(places).with_for_update(skip_locked=True))
        return [admit(session, job) for job in jobs]


def _not_ended() -> ColumnElement[bool]:
    return ProvisioningJob.state.not_in(_ENDED)


def _waiting() -> Select[ProvisioningJob]:
    return (
        select(ProvisioningJob)
        .where(ProvisioningJob.admitted_at.is_(None), _not_ended())
        .order_by(ProvisioningJob.created_at, ProvisioningJob.id)
    )


def admit(session: Session, job: ProvisioningJob) -> Admitted:
    """Gives the job its place: its deadline starts now, its steps may be sent."""
    now = utcnow()
    job.deadline_at = moved_deadline(job.created_at, job.deadline_at, now)
    job.admitted_at = now
    job.last_activity_at = now
    if (now - job.created_at).total_seconds() >= 1:
        waited = round((now - job.created_at).total_seconds())
        journal(session, job, "INFO", f"admitted after waiting {waited}s for a place")
    names = tuple(s.name for s in job.steps)
    return Admitted(job.id, JobKind(job.kind), job.generation, names, job.trace_parent)


def send_admitted(job: Admitted) -> None:
    try:
        policy = policy_of(job.kind)
        dispatch.send_steps(policy, job.job_id, job.generation, job.steps, job.trace_parent)
    except Exception:
        # Admitted but not sent: the sweeper finds the quiet admitted job.
        logger.exception("could not queue job %s; the sweeper will dispatch it", job.job_id)


class InLine(Protocol):
    """What a queue position needs of a job (its row or its status summary)."""

    @property
    def state(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def admitted_at(self) -> datetime | None: ...


def queue_position(connection: Connection, job: InLine) -> int | None:
    """1 for the next job to be admitted; None once admitted or ended."""
    if job.admitted_at is not None or job.state in TERMINAL_STATES:
        return None
    ahead = connection.scalar(
        select(func.count())
        .select_from(ProvisioningJob)
        .where(
            ProvisioningJob.admitted_at.is_(None),
            _not_ended(),
            ProvisioningJob.created_at < job.created_at,
        )
    )
    return (ahead or 0) + 1


def on_job_event(event: events.JobEvent) -> None:
    """A job ended and its place is free: runs after that commit."""
    if event.type == "state" and event.data.get("state") in _ENDED:
        start_waiting_jobs(config.current())


def install() -> None:
    events.subscribe(on_job_event)
