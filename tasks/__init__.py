"""Celery tasks: one per saga step, one per compensation, plus rollback and sweep."""

from __future__ import annotations


def register_all() -> None:
    # Importing a task module registers its tasks.
    from tasks import maintenance, rollback, steps, webhooks  # noqa: F401

    webhooks.schedule()
