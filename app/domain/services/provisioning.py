"""Submitting work: provision, deprovision and retry requests become jobs.

The job, its step records and the department change are written in one
transaction; Celery messages go out only after it commits, and only if the job
has a place among the running ones (services/admission.py). If sending fails,
the sweeper finds the PENDING job and dispatches it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain import plans, saga
from app.domain.kinds import POLICIES, JobKind, StepAction, policy_of
from app.domain.services import admission
from app.domain.services.journal import journal, transition
from app.domain.states import TERMINAL_STATES, DepartmentStatus, JobState, StepStatus
from app.persistence.database import db
from app.persistence.models import (
    Department,
    IdempotencyRecord,
    JobStep,
    ProvisioningJob,
    utcnow,
)

logger = logging.getLogger("provisioning")


class Conflict(Exception):
    """The request is valid but the department's state forbids it (HTTP 409)."""


class NotFound(Exception):
    pass


class SecretsUnreadable(Conflict):
    """The department's stored secrets do not decrypt with SECRETS_KEY: any job
    that needs them would fail, so none is started (HTTP 409, with the reason)."""


class IdempotencyMismatch(Exception):
    """The Idempotency-Key was used before for a different request (HTTP 422)."""


@dataclass
class Submission:
    job_id: uuid.UUID
    department_id: str
    created: bool
    state: str
    replay: dict[str, Any] | None = field(default=None)


def request_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def replay_for(key: str, payload: dict[str, Any]) -> IdempotencyRecord | None:
    with db.transaction() as session:
        record = session.get(IdempotencyRecord, key)
        if record is not None and record.request_hash != request_hash(payload):
            raise IdempotencyMismatch("Idempotency-Key was already used for a different request")
        return record


def remember_response(
    key: str, payload: dict[str, Any], status: int, body: dict[str, Any], headers: dict[str, str]
) -> None:
    statement = (
        insert(IdempotencyRecord)
        .values(
            key=key,
            request_hash=request_hash(payload),
            status_code=status,
            response=body,
            headers=headers,
        )
        .on_conflict_do_nothing()
    )
    with db.transaction() as session:
        session.execute(statement)


def submit_provisioning(
    payload: dict[str, Any], actor: str | None, *, settings: Settings
) -> Submission:
    try:
        submission = _record_provisioning(payload, actor, settings)
    except IntegrityError:
        # Another API process created a job for this department at the same
        # moment; the partial unique index let only one through. Report that one.
        submission = _record_provisioning(payload, actor, settings)
    if submission.created:
        send(settings)
    return submission


def _record_provisioning(
    payload: dict[str, Any], actor: str | None, settings: Settings
) -> Submission:
    with db.transaction() as session:
        department = _department_for_update(session, payload)
        in_flight = job_in_flight(session, department, JobKind.PROVISION)
        if in_flight is not None:
            return in_flight
        if department.status == DepartmentStatus.ACTIVE:
            raise Conflict(f"department {department.department_id} is already ACTIVE")
        if department.status == DepartmentStatus.DEPROVISIONED:
            department.incarnation = uuid.uuid4()  # a new department: old tokens stay out
        department.config = payload
        department.department_name = payload["departmentName"]
        steps = plans.plan_provision()
        job = new_job(session, department, JobKind.PROVISION, payload, actor, steps, settings)
        journal(session, job, "INFO", f"provisioning requested by {actor or 'unknown'}")
        return Submission(job.id, department.department_id, True, job.state)


def _department_for_update(session: Session, payload: dict[str, Any]) -> Department:
    """Creates the department row if missing, then locks it: concurrent requests
    for one department queue here instead of racing."""
    session.execute(
        insert(Department)
        .values(
            id=uuid.uuid4(),
            department_id=payload["departmentId"],
            department_name=payload["departmentName"],
            status=DepartmentStatus.PROVISIONING,
            config=payload,
            resources={},
        )
        .on_conflict_do_nothing(index_elements=["department_id"])
    )
    department = session.scalar(
        select(Department)
        .where(Department.department_id == payload["departmentId"])
        .with_for_update()
    )
    assert department is not None
    return department


def active_job(session: Session, department: Department) -> ProvisioningJob | None:
    return session.scalar(
        select(ProvisioningJob).where(
            ProvisioningJob.department_pk == department.id,
            ProvisioningJob.state.not_in([s.value for s in TERMINAL_STATES]),
        )
    )


def job_in_flight(session: Session, department: Department, kind: JobKind) -> Submission | None:
    """The same request again gets the job in flight; another kind of job is a conflict."""
    active = active_job(session, department)
    if active is None:
        return None
    if active.kind != kind:
        hint = "; cancel it first" if policy_of(active.kind).cancellable else ""
        raise Conflict(
            f"department {department.department_id} has a {active.kind} job in flight{hint}"
        )
    return Submission(active.id, department.department_id, False, active.state)


def new_job(
    session: Session,
    department: Department,
    kind: JobKind,
    config: dict[str, Any],
    actor: str | None,
    steps: tuple[saga.SagaStep, ...],
    settings: Settings,
) -> ProvisioningJob:
    """The job and one record per planned step, in the state its policy starts in."""
    policy = POLICIES[kind]
    if policy.action is StepAction.CREATE:  # removing needs no secret; building does
        _require_readable_secrets(session, department, settings.SECRETS_KEY)
    deadline = utcnow() + timedelta(seconds=settings.MAX_PROVISIONING_TIME)
    job = ProvisioningJob(
        department=department,
        kind=kind,
        state=JobState.PENDING,
        generation=1,
        config=config,
        requested_by=actor,
        step_timeout=settings.STEP_TIMEOUT,
        deadline_at=deadline if policy.has_deadline else None,
    )
    session.add(job)
    for position, definition in enumerate(steps):
        job.steps.append(
            JobStep(
                position=position,
                name=definition.name,
                action=policy.action,
                status=StepStatus.PENDING,
                outputs={},
            )
        )
    session.flush()
    transition(session, job, policy.entry_state)
    if policy.department_while_running is not None:
        department.status = policy.department_while_running
    return job


def send(settings: Settings) -> None:
    """Once a new job's transaction has committed: starts it, or, with every
    place taken, leaves it waiting its turn (services/admission.py)."""
    dispatch_safely(lambda: admission.start_waiting_jobs(settings))


def _require_readable_secrets(session: Session, department: Department, setting: str) -> None:
    from app.domain.services.secrets_keys import unreadable_secret_names
    from app.persistence.secrets import undecryptable_message

    unreadable = unreadable_secret_names(session, department.id, setting)
    if unreadable:
        what = f"stored secrets {', '.join(unreadable)} of department {department.department_id}"
        raise SecretsUnreadable(undecryptable_message(what) + "; no job started")


class ConfirmationRequired(Exception):
    """Deprovisioning needs ``confirm: <departmentId>`` and did not get it (HTTP 422)."""


def request_deprovision(
    department_id: str,
    actor: str | None,
    *,
    settings: Settings,
    confirm: str | None = None,
    final_copy: bool = False,
) -> Submission:
    if settings.DEPROVISION_REQUIRE_CONFIRM and confirm != department_id:
        raise ConfirmationRequired(f"set confirm to {department_id!r} to deprovision it")
    steps = plans.plan_deprovision()
    with db.transaction() as session:
        department = session.scalar(
            select(Department).where(Department.department_id == department_id).with_for_update()
        )
        if department is None:
            raise NotFound(f"department {department_id} not found")
        in_flight = job_in_flight(session, department, JobKind.DEPROVISION)
        if in_flight is not None:
            return in_flight
        if department.status == DepartmentStatus.DEPROVISIONED:
            raise Conflict(f"department {department_id} is already deprovisioned")
        if department.deletion_protection:
            raise Conflict(
                f"department {department_id} has deletion protection; "
                "PATCH deletionProtection=false first"
            )
        job = new_job(
            session, department, JobKind.DEPROVISION, department.config, actor, steps, settings
        )
        journal(session, job, "INFO", f"deprovisioning requested by {actor or 'unknown'}")
        if final_copy:
            from app.domain.services.final_copies import request_copy

            request_copy(session, department, job)
        submission = Submission(job.id, department_id, True, job.state)
    send(settings)
    return submission


def dispatch_safely(send: Any) -> None:
    try:
        send()
    except Exception:
        logger.exception("could not queue the job; the sweeper will dispatch it")
