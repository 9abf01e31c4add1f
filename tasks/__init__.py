"""Celery tasks: one per saga step, one per compensation, plus rollback and sweep."""

from __future__ import annotations


def register_all() -> None:
    from tasks import maintenance, rollback, steps  # noqa: F401 - importing registers them
