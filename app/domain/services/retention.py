"""dataRetention enforced: each department's conversation data older than its
retention is deleted, by the tenant's own database role (never with more rights:
a tenant's DELETE triggers fire as the tenant), and reported in metrics and the
audit log (the beat task counts the metrics: the domain knows nothing of them).

The retention comes from the orchestrator's record of the department, not from
the tenant's ``tenant_settings`` row (which the tenant can rewrite). A
department with a job in flight is left for the next run: an update that
shortens the retention and then fails is rolled back to the longer one, and
deleted rows could not be.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from app.config import Settings
from app.domain import catalogue
from app.domain.services.audit import record_action
from app.domain.services.job_records import context_for
from app.domain.services.provisioning import active_job
from app.domain.states import DepartmentStatus
from app.persistence.database import db
from app.persistence.models import Department, utcnow
from app.providers.base import DepartmentContext, ProviderError
from app.providers.registry import tenant_database

logger = logging.getLogger("provisioning.retention")
ENFORCED = (DepartmentStatus.ACTIVE, DepartmentStatus.DEGRADED)
ACTOR = "beat:retention"


@dataclass(frozen=True)
class RetentionResult:
    department_id: str
    retention: str
    cutoff: datetime
    removed: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def cutoff_for(retention: str, now: datetime) -> datetime:
    """Rows strictly older than this go (``90d``: anything from before 90 days ago)."""
    return now - timedelta(days=catalogue.retention_days(retention))


def enforce_retention(settings: Settings, now: datetime | None = None) -> list[RetentionResult]:
    """One pass over the fleet; one department's failure does not stop the rest."""
    now = now or utcnow()
    results = []
    for retention, context in _due(settings):
        result = _purge(settings, context, retention, cutoff_for(retention, now))
        _report(result)
        results.append(result)
    return results


def _due(settings: Settings) -> list[tuple[str, DepartmentContext]]:
    with db.transaction() as session:
        departments = session.scalars(
            select(Department)
            .where(Department.status.in_(ENFORCED))
            .order_by(Department.department_id)
        ).all()
        return [
            (str(d.config["dataRetention"]), context_for(d, settings))
            for d in departments
            if d.config.get("dataRetention") and active_job(session, d) is None
        ]


def _purge(
    settings: Settings, context: DepartmentContext, retention: str, cutoff: datetime
) -> RetentionResult:
    try:
        removed = tenant_database(settings).purge_expired(context, cutoff)
    except ProviderError as exc:
        return RetentionResult(context.department_id, retention, cutoff, error=str(exc))
    return RetentionResult(context.department_id, retention, cutoff, removed)


def _report(result: RetentionResult) -> None:
    details = {
        "retention": result.retention,
        "cutoff": result.cutoff.isoformat(),
        "removed": result.removed,
    }
    if result.error is not None:
        logger.warning("retention of %s failed: %s", result.department_id, result.error)
        record_action(
            "retention",
            result.department_id,
            "failed",
            ACTOR,
            None,
            {**details, "error": result.error},
        )
        return
    # An audit row only when something went: an hourly "nothing to do" per
    # department would bury the rows that matter.
    if any(result.removed.values()):
        record_action("retention", result.department_id, "ok", ACTOR, None, details)
