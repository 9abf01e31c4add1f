"""Periodic housekeeping run by Celery beat."""

from __future__ import annotations

from celery import shared_task

from app.config import current
from app.domain.services.sweeper import sweep


@shared_task(name="provisioning.sweep")
def sweep_stalled_jobs() -> list[str]:
    return [f"{a.action} {a.job_id} gen {a.generation}" for a in sweep(current())]


@shared_task(name="provisioning.detect_drift")
def detect_drift_task() -> list[str]:
    from app.domain.services.drift import detect_drift

    return [f"{f.department_id}: {', '.join(f.failing)}" for f in detect_drift(current())]


@shared_task(name="provisioning.purge_oauth_tokens")
def purge_oauth_tokens() -> int:
    """Expired access tokens introspect as inactive whether or not their row
    exists; without this, every token ever issued would stay in the table."""
    from datetime import UTC, datetime

    from app.oauth.server import purge_expired_tokens

    return purge_expired_tokens(datetime.now(UTC))
