"""Periodic housekeeping run by Celery beat."""

from __future__ import annotations

from celery import shared_task

from app.config import current
from app.domain.services.sweeper import sweep
from app.observability.prometheus import retention_purged, sweeper_action


@shared_task(name="provisioning.sweep")
def sweep_stalled_jobs() -> list[str]:
    actions = sweep(current())
    for action in actions:
        sweeper_action(action.action)  # counted here: the domain knows nothing of metrics
    return [f"{a.action} {a.job_id} gen {a.generation}" for a in actions]


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


@shared_task(name="provisioning.enforce_retention")
def enforce_retention_task() -> list[str]:
    from app.domain.services.retention import enforce_retention

    results = enforce_retention(current())
    for result in results:
        retention_purged("failed" if result.error else "ok", {} if result.error else result.removed)
    return [f"{r.department_id}: {r.error or r.removed}" for r in results]


@shared_task(name="provisioning.purge_final_copies")
def purge_final_copies_task() -> int:
    from app.domain.services.final_copies import purge_expired

    return purge_expired()


@shared_task(name="provisioning.rotate_due_credentials")
def rotate_due_credentials_task() -> list[str]:
    from app.domain.services.credentials import rotate_due

    return rotate_due(current())
