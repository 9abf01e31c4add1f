"""Manual cleanup: remove whatever of a department exists in each real system.

Providers delete by department id alone, so this works even when the
orchestrator has no record of the department (or a wrong one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from app.config import Settings
from app.domain import saga
from app.domain.department import DEPARTMENT_ID_PATTERN, is_department_id
from app.domain.services.job_records import context_for
from app.domain.states import TERMINAL_STATES, DepartmentStatus
from app.persistence.database import db
from app.persistence.models import Department, ProvisioningJob
from app.providers.base import DepartmentContext
from app.providers.registry import provider


class CleanupRefused(Exception):
    pass


class NoSecrets:
    """For a department with no record: there are no stored secrets to use."""

    def get(self, name: str) -> str | None:
        return None

    def put(self, name: str, value: str) -> None:
        """Nothing to keep: cleanup never creates."""

    def delete(self, name: str) -> None:
        """Nothing stored."""


@dataclass
class CleanupReport:
    lines: list[str] = field(default_factory=list)
    ok: bool = True


def _context(department_id: str, settings: Settings, force: bool) -> DepartmentContext:
    with db.transaction() as session:
        department = session.scalar(
            select(Department).where(Department.department_id == department_id)
        )
        if department is None:
            return DepartmentContext(department_id, {}, {}, NoSecrets())
        busy = session.scalar(
            select(ProvisioningJob.id).where(
                ProvisioningJob.department_pk == department.id,
                ProvisioningJob.state.not_in([s.value for s in TERMINAL_STATES]),
            )
        )
        if busy is not None and not force:
            raise CleanupRefused(f"job {busy} is in flight for {department_id}; use --force")
        return context_for(department, settings)


def cleanup_department(
    department_id: str, settings: Settings, force: bool = False
) -> CleanupReport:
    if not is_department_id(department_id):
        raise CleanupRefused(f"departmentId must match ^{DEPARTMENT_ID_PATTERN}$")
    context = _context(department_id, settings, force)
    report = CleanupReport()
    for step in reversed(saga.RESOURCE_STEPS):
        try:
            provider(settings, step.provider).delete(context)
            report.lines.append(f"{step.component:<10} removed (or was absent)")
        except Exception as exc:
            report.ok = False
            report.lines.append(f"{step.component:<10} FAILED: {type(exc).__name__}: {exc}")
    _mark_cleaned(department_id, report.ok)
    return report


def _mark_cleaned(department_id: str, ok: bool) -> None:
    with db.transaction() as session:
        department = session.scalar(
            select(Department).where(Department.department_id == department_id).with_for_update()
        )
        if department is None:
            return
        if ok:
            department.resources = {}
            department.status = DepartmentStatus.DEPROVISIONED
            department.deployment_url = None
            department.container_url = None
        else:
            department.status = DepartmentStatus.FAILED
