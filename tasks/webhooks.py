"""Webhook delivery: one task per delivery id; the database holds the rest."""

from __future__ import annotations

from celery import shared_task

from app.config import current
from app.domain.services import webhooks


@shared_task(name=webhooks.TASK_NAME, ignore_result=True)
def deliver_webhook(delivery_id: int) -> str:
    """One attempt (or a wait for the stream's earlier events); reschedules itself
    with exponential backoff until delivered, refused or out of attempts."""
    result = webhooks.deliver(delivery_id, current())
    if result.retry_in is not None:
        deliver_webhook.apply_async((delivery_id,), countdown=result.retry_in)
    return result.status


@shared_task(name="webhooks.redeliver_overdue", ignore_result=True)
def redeliver_overdue() -> int:
    return len(webhooks.redeliver_overdue())
