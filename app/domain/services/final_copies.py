"""Final copies: a deprovision that asks for one exports the tenant schema
(encrypted under SECRETS_KEY) before dropping it, so that it can be undone
for FINAL_COPY_RETENTION_DAYS. Beat purges expired copies."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.domain.services.job_records import context_for, lock_job
from app.domain.services.journal import journal
from app.domain.states import DepartmentStatus
from app.persistence.database import db
from app.persistence.final_copy_models import FinalCopy
from app.persistence.models import Department, ProvisioningJob, utcnow
from app.persistence.secrets import keyring
from app.providers.base import DepartmentContext
from app.providers.database_postgres import schema_name
from app.providers.tenant_export import SchemaMissing, TenantExporter

logger = logging.getLogger("provisioning")
COPIED_STEP = "create_database"  # the step whose removal drops the data
PENDING, STORED, RESTORED, FAILED = "pending", "stored", "restored", "failed"


class CopyRefused(Exception):
    """The copy cannot be restored (unknown, expired, not stored, department busy)."""


def request_copy(session: Session, department: Department, job: ProvisioningJob) -> None:
    """Recorded with the deprovisioning job; taken when its database step runs."""
    session.add(
        FinalCopy(
            department_pk=department.id,
            department_id=department.department_id,
            job_id=job.id,
            status=PENDING,
            schema=f"{department.department_id.replace('-', '_')}_tenant",
        )
    )
    journal(session, job, "INFO", "a final copy of the tenant schema will be kept")


def before_removal(
    job_id: uuid.UUID, step_name: str, context: DepartmentContext, settings: Settings
) -> None:
    """Takes the job's pending copy, if any, before the schema is dropped. A copy
    that cannot be taken fails the step, so the data stays (left behind)."""
    if step_name != COPIED_STEP:
        return
    with db.transaction() as session:
        copy_id = session.scalar(
            select(FinalCopy.id).where(FinalCopy.job_id == job_id, FinalCopy.status == PENDING)
        )
    if copy_id is None:
        return
    exporter = TenantExporter(tenant_database_url=settings.tenant_database_url)
    try:
        dump = exporter.export(context)
    except SchemaMissing as exc:  # nothing left to keep; removing may go on
        _finish(job_id, copy_id, FAILED, None, str(exc), settings)
        return
    ciphertext = keyring(settings.SECRETS_KEY).encrypt(dump)
    _finish(job_id, copy_id, STORED, ciphertext, None, settings)


def _finish(
    job_id: uuid.UUID,
    copy_id: uuid.UUID,
    status: str,
    ciphertext: bytes | None,
    error: str | None,
    settings: Settings,
) -> None:
    with db.transaction() as session:
        copy = session.get(FinalCopy, copy_id)
        assert copy is not None
        copy.status, copy.ciphertext, copy.error = status, ciphertext, error
        if ciphertext is not None:
            copy.size_bytes = len(ciphertext)
            copy.stored_at = utcnow()
            copy.expires_at = copy.stored_at + timedelta(days=settings.FINAL_COPY_RETENTION_DAYS)
        job = lock_job(session, job_id)
        if job is not None:
            message = (
                f"final copy {copy_id} stored ({copy.size_bytes} bytes, until {copy.expires_at})"
                if status == STORED
                else f"final copy not taken: {error}"
            )
            journal(session, job, "INFO" if status == STORED else "WARNING", message, COPIED_STEP)


def list_copies(department_id: str | None = None) -> list[dict[str, Any]]:
    query = select(FinalCopy).order_by(FinalCopy.created_at.desc())
    if department_id:
        query = query.where(FinalCopy.department_id == department_id)
    with db.transaction() as session:
        return [_view(copy) for copy in session.scalars(query)]


def _view(copy: FinalCopy) -> dict[str, Any]:
    return {
        "id": str(copy.id),
        "departmentId": copy.department_id,
        "status": copy.status,
        "sizeBytes": copy.size_bytes,
        "createdAt": copy.created_at,
        "expiresAt": copy.expires_at,
        "restoredAt": copy.restored_at,
        "error": copy.error,
    }


@dataclass(frozen=True)
class RestorePlan:
    copy_id: uuid.UUID
    department_id: str
    config: dict[str, Any]
    needs_provisioning: bool  # DEPROVISIONED: provision first, then load the data


def plan_restore(copy_id: uuid.UUID) -> RestorePlan:
    with db.transaction() as session:
        copy = session.get(FinalCopy, copy_id)
        if copy is None:
            raise CopyRefused(f"no final copy {copy_id}")
        if copy.status not in (STORED, RESTORED):
            raise CopyRefused(f"final copy {copy_id} is {copy.status}: nothing to restore")
        if copy.expires_at is not None and copy.expires_at <= utcnow():
            raise CopyRefused(f"final copy {copy_id} expired at {copy.expires_at}")
        department = session.get(Department, copy.department_pk)
        assert department is not None
        if department.status not in (DepartmentStatus.DEPROVISIONED, DepartmentStatus.ACTIVE):
            raise CopyRefused(
                f"department {department.department_id} is {department.status}; "
                "restore needs it DEPROVISIONED (or ACTIVE, to load the data only)"
            )
        return RestorePlan(
            copy_id,
            department.department_id,
            dict(department.config),
            department.status == DepartmentStatus.DEPROVISIONED,
        )


def load_copy(copy_id: uuid.UUID, actor: str, settings: Settings) -> None:
    """Loads the copy into the (re-provisioned, ACTIVE) department's schema."""
    with db.transaction() as session:
        copy = session.get(FinalCopy, copy_id)
        assert copy is not None and copy.ciphertext is not None
        department = session.get(Department, copy.department_pk)
        assert department is not None
        if department.status != DepartmentStatus.ACTIVE:
            raise CopyRefused(f"department {department.department_id} is {department.status}")
        context = context_for(department, settings)
        ciphertext = bytes(copy.ciphertext)
    if schema_name(context) != copy.schema:
        raise CopyRefused(f"copy is of schema {copy.schema}, not {schema_name(context)}")
    dump = keyring(settings.SECRETS_KEY).decrypt(ciphertext)
    TenantExporter(tenant_database_url=settings.tenant_database_url).restore(context, dump)
    with db.transaction() as session:
        copy = session.get(FinalCopy, copy_id)
        assert copy is not None
        copy.status, copy.restored_at, copy.restored_by = RESTORED, utcnow(), actor


def purge_expired() -> int:
    """Expired copies are deleted, data and all (what beat runs)."""
    with db.transaction() as session:
        result = session.execute(delete(FinalCopy).where(FinalCopy.expires_at <= utcnow()))
        purged = int(getattr(result, "rowcount", 0) or 0)
    if purged:
        logger.info("purged %s expired final copies", purged)
    return purged
