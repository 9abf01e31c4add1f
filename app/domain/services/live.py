"""The little the live stream needs to know about a job, in one cheap query."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from app.domain.states import TERMINAL_STATES
from app.persistence.database import db
from app.persistence.models import Department, ProvisioningJob, utcnow


@dataclass(frozen=True)
class JobBrief:
    job_id: str
    department_id: str
    kind: str
    state: str
    completed_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    def finished_before(self, grace: timedelta) -> bool:
        """Terminal for longer than ``grace``: its events have long been published."""
        return self.finished and (self.completed_at is None or self.completed_at < utcnow() - grace)


def job_brief(job_id: uuid.UUID) -> JobBrief | None:
    with db.transaction() as session:
        row = session.execute(
            select(
                ProvisioningJob.kind,
                ProvisioningJob.state,
                ProvisioningJob.completed_at,
                Department.department_id,
            )
            .join(Department)
            .where(ProvisioningJob.id == job_id)
        ).first()
    if row is None:
        return None
    return JobBrief(str(job_id), row.department_id, row.kind, row.state, row.completed_at)
