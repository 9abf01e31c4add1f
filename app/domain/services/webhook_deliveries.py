"""Reading webhook deliveries and their attempts (GET /api/webhooks/deliveries)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.persistence.database import db
from app.persistence.webhook_models import WebhookDelivery

OPEN = ("pending", "retrying")


def delivery_row(delivery: WebhookDelivery) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value else None

    return {
        "id": delivery.id,
        "eventId": str(delivery.event_id),
        "eventType": delivery.event_type,
        "provisioningId": str(delivery.job_id),
        "departmentId": delivery.department_id,
        "kind": delivery.payload.get("kind"),
        "previousState": delivery.payload.get("previousState"),
        "state": delivery.payload.get("state"),
        "url": delivery.url,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "lastStatusCode": delivery.last_status_code,
        "lastError": delivery.last_error,
        "createdAt": iso(delivery.created_at),
        "nextAttemptAt": iso(delivery.next_attempt_at) if delivery.status in OPEN else None,
        "finishedAt": iso(delivery.finished_at),
        "attemptLog": [
            {
                "number": a.number,
                "at": iso(a.at),
                "outcome": a.outcome,
                "address": a.address,
                "statusCode": a.status_code,
                "durationMs": a.duration_ms,
                "error": a.error,
            }
            for a in delivery.attempt_log
        ],
    }


def list_deliveries(
    department_id: str | None,
    provisioning_id: uuid.UUID | None,
    status: str | None,
    page: int,
    per_page: int,
) -> tuple[list[dict[str, Any]], int]:
    """Oldest first, so a job's events read in the order they happened."""
    query = select(WebhookDelivery)
    if department_id:
        query = query.where(WebhookDelivery.department_id == department_id)
    if provisioning_id:
        query = query.where(WebhookDelivery.job_id == provisioning_id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    with db.transaction() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(
            query.options(selectinload(WebhookDelivery.attempt_log))
            .order_by(WebhookDelivery.id)
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
        return [delivery_row(d) for d in rows], total
