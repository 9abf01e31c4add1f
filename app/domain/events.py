"""Job events, published only once the transaction that caused them commits.

Services record events on the session (``record``); when it commits, each is
handed to every subscriber (the live stream, metrics, webhooks...). A rolled
back transaction publishes nothing, so no subscriber ever hears of a state
that was not written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

logger = logging.getLogger("provisioning.events")
PENDING_KEY = "pending_job_events"


@dataclass(frozen=True)
class JobEvent:
    """``type`` is "state" (a transition), "step" (a step's status), "log", or
    "retry" (a transient failure retried after backoff)."""

    type: str
    job_id: str
    department_id: str
    kind: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["at"] = self.at.isoformat().replace("+00:00", "Z")
        return payload


Subscriber = Callable[[JobEvent], None]
_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> None:
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def record(session: Session, job_event: JobEvent) -> None:
    session.info.setdefault(PENDING_KEY, []).append(job_event)


@event.listens_for(Session, "after_commit")
def _publish_committed(session: Session) -> None:
    for job_event in session.info.pop(PENDING_KEY, []):
        for subscriber in list(_subscribers):
            try:
                subscriber(job_event)
            except Exception:
                # A subscriber's outage (Redis, a webhook) must never undo or
                # block the provisioning work that was just committed.
                logger.exception("event subscriber %r failed", subscriber)


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
