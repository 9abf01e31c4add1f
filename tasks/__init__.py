"""Celery tasks: one per saga step, removal and compensation, plus rollback, sweeps
and webhook delivery. Their periodic schedule is app.celery_app.beat_schedule."""

from __future__ import annotations


def register_all() -> None:
    # Importing a task module registers its tasks.
    from tasks import maintenance, rollback, steps, webhooks  # noqa: F401
