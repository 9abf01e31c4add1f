"""Webhooks: a signed POST for every state change of every job.

The subscriber turns each committed "state" JobEvent into one delivery row per
target URL (WEBHOOK_URLS and the department's callbackUrl) in its own short
transaction, then queues ``webhooks.deliver`` with the delivery id only. The
database is the source of truth: a lost message is re-queued by the beat
sweep (``redeliver_overdue``), a duplicate one finds the delivery locked,
finished or not yet due and does nothing.

A receiver hears one job's events in order: a delivery is not attempted while
an earlier delivery of the same job to the same URL is still open (it waits,
so a receiver that is down delays, but never reorders, what follows).
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import certifi
import urllib3
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from app import config
from app.config import Settings
from app.domain import events
from app.domain.webhook_security import (
    SIGNATURE_HEADER,
    IPAddress,
    RefusedAddress,
    resolve_allowed,
    sign,
    signing_key,
)
from app.persistence.database import db
from app.persistence.models import Department, ProvisioningJob, utcnow
from app.persistence.webhook_models import WebhookAttempt, WebhookDelivery

logger = logging.getLogger("provisioning.webhooks")

TASK_NAME = "webhooks.deliver"
EVENT_TYPE = "job.state_changed"
OPEN = ("pending", "retrying")
MAX_ADDRESSES = 3  # of a multi-homed host, tried in turn when one does not connect
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


def target_urls(
    job_config: dict[str, Any] | None, department_config: dict[str, Any] | None, settings: Settings
) -> list[str]:
    """WEBHOOK_URLS, then the job's callbackUrl (or the department's), each once."""
    callback = (job_config or {}).get("callbackUrl") or (department_config or {}).get("callbackUrl")
    urls = [*settings.WEBHOOK_URLS, *([callback] if isinstance(callback, str) else [])]
    return list(dict.fromkeys(urls))


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
    with db.transaction() as session:
        configs = session.execute(
            select(ProvisioningJob.config, Department.config)
            .join(Department, ProvisioningJob.department_pk == Department.id)
            .where(ProvisioningJob.id == uuid.UUID(event.job_id))
        ).first()
        urls = target_urls(configs[0], configs[1], settings) if configs else []
        if not urls:
            return []
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
    from celery import current_app

    try:
        current_app.send_task(TASK_NAME, args=[delivery_id], countdown=countdown)
    except Exception:
        # The row is the truth; the beat sweep sends what could not be queued now.
        logger.exception("could not queue webhook delivery %s; the sweep will", delivery_id)


# --- delivery -----------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    number: int
    url: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    kind: str  # delivered | http_error | network_error | refused
    address: str | None = None
    status_code: int | None = None
    duration_ms: float | None = None
    error: str | None = None
    connected: bool = True  # False: nothing reached this address, another may do


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
    # The oldest listed key: adding a new key first (a rotation under way)
    # leaves the derived signing key as it was until the old key is dropped.
    key = signing_key(settings.WEBHOOK_SECRET, settings.SECRETS_KEY.split(",")[-1].strip())
    try:
        addresses = resolve_allowed(claim.url, settings.WEBHOOK_ALLOW_PRIVATE)
    except RefusedAddress as exc:
        return Outcome("refused", error=str(exc))
    except OSError as exc:
        return Outcome("network_error", error=str(exc))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "provisioning-orchestrator-webhooks/1",
        "X-Webhook-Id": claim.payload.get("id", ""),
        "X-Webhook-Delivery": str(claim.delivery_id),
        "X-Webhook-Attempt": str(claim.number),
        # Signed at send time, so a retry carries a fresh timestamp.
        SIGNATURE_HEADER: sign(key, body),
    }
    last = Outcome("network_error", error="no address to connect to")
    for address in addresses[:MAX_ADDRESSES]:
        last = _post(claim.url, address, body, headers, settings.WEBHOOK_TIMEOUT)
        if last.connected:
            return last
    return last


def _pool(url: str, address: IPAddress, timeout: float) -> urllib3.HTTPConnectionPool:
    """A pool that connects to the checked address, whatever DNS says by now,
    while Host, SNI and the certificate check still use the URL's host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    options: dict[str, Any] = {
        "timeout": urllib3.Timeout(connect=timeout, read=timeout),
        "retries": False,
        "maxsize": 1,
    }
    if parts.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            str(address),
            parts.port or 443,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            **options,
        )
    return urllib3.HTTPConnectionPool(str(address), parts.port or 80, **options)


def _request_target(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    host_header = f"[{host}]" if ":" in host else host
    if parts.port:
        host_header += f":{parts.port}"
    path = parts.path or "/"
    return (f"{path}?{parts.query}" if parts.query else path), host_header


def _post(
    url: str, address: IPAddress, body: bytes, headers: dict[str, str], timeout: float
) -> Outcome:
    path, host_header = _request_target(url)
    started = time.monotonic()
    try:
        with _pool(url, address, timeout) as pool:
            response = pool.urlopen(
                "POST",
                path,
                body=body,
                headers={**headers, "Host": host_header},
                redirect=False,  # a redirect could point anywhere, past the address check
                assert_same_host=False,
                preload_content=False,
            )
            excerpt = response.read(512, decode_content=False)
            response.release_conn()
    except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
        return Outcome("network_error", str(address), error=str(exc)[:1000], connected=False)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return Outcome("network_error", str(address), error=f"{type(exc).__name__}: {exc}"[:1000])
    elapsed = round((time.monotonic() - started) * 1000, 1)
    if 200 <= response.status < 300:
        return Outcome("delivered", str(address), response.status, elapsed)
    text = excerpt.decode("utf-8", "replace")[:300]
    error = f"HTTP {response.status}: {text}"
    return Outcome("http_error", str(address), response.status, elapsed, error)


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


# --- reading ------------------------------------------------------------------


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
