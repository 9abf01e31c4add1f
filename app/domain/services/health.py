"""Live health of one department: the same checks the last saga step runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.config import Settings
from app.domain.services.job_records import context_for
from app.domain.services.queries import iso
from app.persistence.database import db
from app.persistence.models import Department, utcnow
from app.providers.base import CheckResult
from app.providers.registry import checks_provider


def _check(result: CheckResult) -> dict[str, Any]:
    # Whole milliseconds, as the original service's clients read `latency`.
    latency = round(result.latency_ms)
    return {
        "name": result.name,
        "healthy": result.healthy,
        "latency": latency,
        "detail": result.detail,
    }


def department_health(department_id: str, settings: Settings) -> dict[str, Any] | None:
    with db.transaction() as session:
        department = session.scalar(
            select(Department).where(Department.department_id == department_id)
        )
        if department is None:
            return None
        context = context_for(department, settings)
    results = checks_provider(settings).run_checks(context)
    return {
        "departmentId": department_id,
        "healthy": all(r.healthy for r in results),
        "checks": [_check(r) for r in results],
        "lastCheck": iso(utcnow()),
    }
