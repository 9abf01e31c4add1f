"""Fleet health sweep: finds departments whose resources drifted, marks them
DEGRADED with the failing checks, and (with AUTO_REPAIR) starts repairs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from app.config import Settings
from app.domain.services.health import department_health
from app.domain.services.lifecycle import request_repair
from app.domain.services.provisioning import Conflict, SecretsUnreadable, active_job
from app.domain.states import DepartmentStatus
from app.persistence.database import db
from app.persistence.models import Department, utcnow

WATCHED = (DepartmentStatus.ACTIVE, DepartmentStatus.DEGRADED)


@dataclass(frozen=True)
class DriftFinding:
    department_id: str
    failing: tuple[str, ...]
    repair_job: str | None = None
    # Why no repair was started although one was asked for.
    not_repaired: str | None = None


def watched_departments() -> list[str]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(Department.department_id)
                .where(Department.status.in_(WATCHED))
                .order_by(Department.department_id)
            )
        )


def detect_drift(settings: Settings, repair: bool | None = None) -> list[DriftFinding]:
    """``repair`` overrides AUTO_REPAIR (the CLI's --repair, `make up` after a restart)."""
    repair = settings.AUTO_REPAIR if repair is None else repair
    findings = []
    for department_id in watched_departments():
        result = department_health(department_id, settings)
        if result is None:
            continue
        failing = tuple(c["name"] for c in result["checks"] if not c["healthy"])
        if not _record(department_id, failing, result["checks"]):
            continue  # a job started meanwhile; its outcome decides the status
        if failing:
            job, reason = (
                _start_repair(department_id, failing, settings) if repair else (None, None)
            )
            findings.append(DriftFinding(department_id, failing, job, reason))
    return findings


def _start_repair(
    department_id: str, failing: tuple[str, ...], settings: Settings
) -> tuple[str | None, str | None]:
    try:
        job = request_repair(department_id, list(failing), "drift-sweeper", settings=settings)
        return str(job.job_id), None
    except SecretsUnreadable as exc:
        # A repair that must fail is not started: one line, not a pile of failed jobs.
        return None, str(exc)
    except Conflict:
        return None, None  # a job got there first; its outcome decides


def _record(department_id: str, failing: tuple[str, ...], checks: list[dict]) -> bool:
    with db.transaction() as session:
        department = session.scalar(
            select(Department).where(Department.department_id == department_id).with_for_update()
        )
        if department is None or department.status not in WATCHED:
            return False
        if active_job(session, department) is not None:
            return False
        department.last_health_at = utcnow()
        if failing:
            department.status = DepartmentStatus.DEGRADED
            department.drift = {
                "failing": list(failing),
                "checks": [c for c in checks if not c["healthy"]],
            }
        else:
            department.status = DepartmentStatus.ACTIVE
            department.drift = None
        return True
