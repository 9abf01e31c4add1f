"""Periodic housekeeping run by Celery beat."""

from __future__ import annotations

from celery import shared_task

from app.config import current
from app.domain.services.sweeper import sweep


@shared_task(name="provisioning.sweep")
def sweep_stalled_jobs() -> list[str]:
    return [f"{a.action} {a.job_id} gen {a.generation}" for a in sweep(current())]
