"""Webhooks: a signed POST for every state change of every job.

The subscriber turns each committed "state" JobEvent into one delivery row per
target URL (WEBHOOK_URLS and the department's callbackUrl), then queues one
attempt through the dispatcher with the delivery id only. The database is the
source of truth: a lost message is re-queued by the beat sweep, a duplicate
finds the delivery locked, finished or not yet due and does nothing. A receiver
hears one job's events in order: a delivery waits while an earlier one of the
same job to the same URL is open (a receiver that is down delays, never
reorders). Signing: webhook_signing.py; the HTTP side: providers/webhook_http.py.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import config
from app.config import Settings
from app.domain import dispatch, events, webhook_targets
from app.domain.webhook_signing import secret_texts, signed_headers
from app.persistence.database import db
from app.persistence.models import utcnow
from app.persistence.webhook_models import WebhookAttempt, WebhookDelivery
from app.providers import webhook_http
from app.providers.webhook_http import MAX_ADDRESSES, Outcome

logger = logging.getLogger("provisioning.webhooks")

TASK_NAME = "webhooks.deliver"
EVENT_TYPE = "job.state_changed"
OPEN = ("pending", "retrying")
MAX_BACKOFF = 3600.0
OVERDUE_GRACE = timedelta(seconds=60)
# A message may fire a little before the time it was scheduled for.
EARLY_SLACK = timedelta(seconds=1)


def install() -> None:
    events.subscribe(on_job_event)


def on_job_event(event: events.JobEvent) -> None:
    """Runs after the transition committed, in the committing process."""
    if event.type != "state":
        return
    for delivery_id in record_deliveries(event, config.current()):
        queue(delivery_id)


def event_payload(event: events.JobEvent, event_id: uuid.UUID) -> dict[str, Any]:
    return {
        "id": str(event_id),
        "type": EVENT_TYPE,
        "kind": event.kind,
        "provisioningId": event.job_id,
        "departmentId": event.department_id,
        "previousState": event.data.get("previous"),
        "state": event.data.get("state"),
        "time": event.at.isoformat().replace("+00:00", "Z"),
    }


def record_deliveries(event: events.JobEvent, settings: Settings) -> list[int]:
    urls = webhook_targets.target_urls(event.callback_url, settings.WEBHOOK_URLS)
    if not urls:
        return []  # nobody to tell: no transaction at all (most jobs, every step)
    with db.transaction() as session:
        event_id = uuid.uuid4()  # shared by every URL, so receivers can deduplicate
        payload = event_payload(event, event_id)
        deliveries = [
            WebhookDelivery(
                event_id=event_id,
                event_type=EVENT_TYPE,
                job_id=uuid.UUID(event.job_id),
                department_id=event.department_id,
                url=url,
                payload=payload,
                status="pending",
                attempts=0,
                next_attempt_at=utcnow(),
            )
            for url in urls
        ]
        session.add_all(deliveries)
        session.flush()
        return [d.id for d in deliveries]


def queue(delivery_id: int, countdown: float | None = None) -> None:
    try:
        dispatch.current().webhook(delivery_id, countdown)
    except Exception:
        # The row is the truth; the beat sweep sends what could not be queued now.
        logger.exception("could not queue webhook delivery %s; the sweep will", delivery_id)


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    number: int
    url: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Result:
    status: str
    retry_in: float | None = None  # seconds until this delivery's task should run again


def deliver(delivery_id: int, settings: Settings) -> Result:
    """One step of a delivery: wait for the stream, or make one attempt."""
    claim = _claim(delivery_id, settings)
    if isinstance(claim, Result):
        return claim
    outcome = _send(claim, settings)
    return _finish(claim, outcome, settings)


def _claim(delivery_id: int, settings: Settings) -> Claim | Result:
    now = utcnow()
    with db.transaction() as session:
        delivery = session.scalar(
            select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update()
        )
        if delivery is None or delivery.status not in OPEN:
            return Result(delivery.status if delivery else "missing")
        if delivery.locked_until is not None and delivery.locked_until > now:
            return Result("in_flight")  # a duplicate message; the sender reschedules
        if delivery.next_attempt_at > now + EARLY_SLACK:
            return Result("not_due")  # a duplicate; the scheduled message will come
        wait = _wait_for_stream(session, delivery, now)
        if wait is not None:
            delivery.next_attempt_at = now + timedelta(seconds=wait)
            return Result("waiting", retry_in=wait)
        delivery.attempts += 1
        # Long enough for every address's timeouts; a crashed sender's lock expires.
        lock = settings.WEBHOOK_TIMEOUT * 2 * MAX_ADDRESSES + 5
        delivery.locked_until = now + timedelta(seconds=lock)
        return Claim(delivery.id, delivery.attempts, delivery.url, dict(delivery.payload))


def _wait_for_stream(session: Session, delivery: WebhookDelivery, now: datetime) -> float | None:
    """Seconds to wait while an earlier delivery of this job to this URL is open."""
    blocker = session.scalar(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.job_id == delivery.job_id,
            WebhookDelivery.url == delivery.url,
            WebhookDelivery.id < delivery.id,
            WebhookDelivery.status.in_(OPEN),
        )
        .order_by(WebhookDelivery.id)
        .limit(1)
    )
    if blocker is None:
        return None
    if blocker.locked_until is not None and blocker.locked_until > now:
        return 0.25  # being sent right now
    due_in = (blocker.next_attempt_at - now).total_seconds()
    if due_in >= 0:
        return min(due_in + 0.25, 60.0)  # look again just after its next attempt
    # Overdue: its message is about to run, or was lost and the sweep will resend
    # it; poll, more slowly the longer that lasts.
    return min(max(-due_in / 2, 0.25), 30.0)


def _send(claim: Claim, settings: Settings) -> Outcome:
    body = json.dumps(claim.payload, separators=(",", ":"), sort_keys=True).encode()
    # The oldest SECRETS_KEY: adding a new key first (a rotation under way) leaves
    # the derived signing key as it was until the old key is dropped.
    secret_list = secret_texts(settings.WEBHOOK_SECRET, settings.SECRETS_KEY.split(",")[-1].strip())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "provisioning-orchestrator-webhooks/1",
        "X-Webhook-Id": str(claim.payload.get("id", "")),  # deprecated: webhook-id
        "X-Webhook-Delivery": str(claim.delivery_id),
        "X-Webhook-Attempt": str(claim.number),
        **signed_headers(str(claim.payload.get("id") or claim.delivery_id), body, secret_list),
    }
    return webhook_http.send(
        claim.url, body, headers, settings.WEBHOOK_ALLOW_PRIVATE, settings.WEBHOOK_TIMEOUT
    )


def backoff(attempt: int, settings: Settings) -> float:
    """WEBHOOK_RETRY_BASE doubling per attempt, capped at an hour, +-20% jitter."""
    delay = min(settings.WEBHOOK_RETRY_BASE * 2 ** max(attempt - 1, 0), MAX_BACKOFF)
    return round(delay * random.uniform(0.8, 1.2), 3)


def _finish(claim: Claim, outcome: Outcome, settings: Settings) -> Result:
    now = utcnow()
    with db.transaction() as session:
        delivery = session.scalar(
            select(WebhookDelivery).where(WebhookDelivery.id == claim.delivery_id).with_for_update()
        )
        assert delivery is not None
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                number=claim.number,
                at=now,
                outcome=outcome.kind,
                address=outcome.address,
                status_code=outcome.status_code,
                duration_ms=outcome.duration_ms,
                error=outcome.error,
            )
        )
        delivery.locked_until = None
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error
        status, retry_in = _next_status(outcome, claim.number, settings)
        delivery.status = status
        if retry_in is None:
            delivery.finished_at = now
        else:
            delivery.next_attempt_at = now + timedelta(seconds=retry_in)
    _log_outcome(claim, outcome, status)
    return Result(status, retry_in)


def _next_status(outcome: Outcome, attempt: int, settings: Settings) -> tuple[str, float | None]:
    if outcome.kind == "delivered":
        return "delivered", None
    if outcome.kind == "refused":
        return "refused", None  # an address policy does not change by retrying
    if attempt >= settings.WEBHOOK_MAX_ATTEMPTS:
        return "failed", None
    return "retrying", backoff(attempt, settings)


def _log_outcome(claim: Claim, outcome: Outcome, status: str) -> None:
    level = logging.INFO if outcome.kind == "delivered" else logging.WARNING
    logger.log(
        level,
        "webhook delivery %s attempt %s to %s: %s (%s)",
        claim.delivery_id,
        claim.number,
        claim.url,
        outcome.kind,
        outcome.error or outcome.status_code,
        extra={"departmentId": claim.payload.get("departmentId"), "webhookStatus": status},
    )


def redeliver_overdue(limit: int = 500) -> list[int]:
    """Queues open deliveries whose message seems lost (the beat sweep)."""
    now = utcnow()
    with db.transaction() as session:
        ids = list(
            session.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.status.in_(OPEN),
                    WebhookDelivery.next_attempt_at < now - OVERDUE_GRACE,
                    (WebhookDelivery.locked_until.is_(None)) | (WebhookDelivery.locked_until < now),
                )
                .order_by(WebhookDelivery.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if ids:
            # Not overdue again until this message has had its chance.
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids))
                .values(next_attempt_at=now)
            )
    for delivery_id in ids:
        queue(delivery_id)
    return ids
