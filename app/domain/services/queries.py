"""Read models: what the API and CLI show about jobs and departments.

Every read here runs on an autocommit connection (`db.autocommit()` or
`db.reading()`): no BEGIN and COMMIT round trips around SELECTs that need no
transaction. The two most polled reads, a job's status and the department list,
run statements built once with bound parameters on a Core connection: building
a select() per request and going through the ORM cost more CPU than the rest of
the request (issue 16)."""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any

from sqlalchemy import Row, Select, bindparam, func, select

from app.config import Settings
from app.domain.services import status_view
from app.domain.services.status_view import iso
from app.domain.states import DepartmentStatus
from app.persistence.database import db
from app.persistence.models import Department, DepartmentConfigVersion, ProvisioningJob

__all__ = ["iso", "job_view"]


def job_view(job_id: uuid.UUID, settings: Settings) -> dict[str, Any] | None:
    """The job's status (status_view.py says what it reads and why so little)."""
    with db.autocommit() as connection:
        job = status_view.read_job(connection, job_id)
        return None if job is None else status_view.status_of(connection, job, settings)


# What a department's row shows: its configuration and resources (JSON, the
# bulk of the row) are left unread, as plain rows rather than ORM objects.
_ROW_COLUMNS = (
    Department.id,
    Department.department_id,
    Department.department_name,
    Department.status,
    Department.container_url,
    Department.deployment_url,
    Department.created_at,
    Department.deletion_protection,
    Department.config_version,
    Department.drift,
)


def department_row(department: Department | Row[Any]) -> dict[str, Any]:
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
    count, page_rows = _list_statements(bool(status), include_deprovisioned, bool(department_id))
    values = {"status": status, "department_id": department_id}
    with db.autocommit() as connection:
        total = connection.scalar(count, values) or 0
        rows = connection.execute(
            page_rows, {**values, "skip": (page - 1) * per_page, "take": per_page}
        ).all()
        return [department_row(d) for d in rows], total


@lru_cache(maxsize=8)
def _list_statements(
    by_status: bool, include_deprovisioned: bool, by_department: bool
) -> tuple[Select[Any], Select[Any]]:
    """The count and the page for one combination of filters, built once."""
    query = select(*_ROW_COLUMNS)
    if by_status:
        query = query.where(Department.status == bindparam("status"))
    elif not include_deprovisioned:
        query = query.where(Department.status != DepartmentStatus.DEPROVISIONED)
    if by_department:
        query = query.where(Department.department_id == bindparam("department_id"))
    count = select(func.count()).select_from(query.subquery())
    page = (
        query.order_by(Department.created_at, Department.department_id)
        .offset(bindparam("skip"))
        .limit(bindparam("take"))
    )
    return count, page


def latest_job_id(department_id: str) -> uuid.UUID | None:
    with db.reading() as session:
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
    with db.reading() as session:
        department = _department(session, department_id)
        return dict(department.config) if department else None


def department_view(department_id: str) -> dict[str, Any] | None:
    with db.reading() as session:
        department = _department(session, department_id)
        return department_row(department) if department else None


def config_history(department_id: str) -> list[dict[str, Any]] | None:
    with db.reading() as session:
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
