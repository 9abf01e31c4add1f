"""Job events kept in a Redis Stream per job, for live followers (SSE).

Every process that commits job changes (API or Celery worker) appends the
committed events to ``po:job-events:<job id>``; Redis assigns monotonically
increasing ids, which double as SSE ids, so a follower resumes exactly after
the last event it saw. When a job reaches a terminal state, an ``end`` entry
carrying the final status is appended after the rest of that transaction's
events, so it is always the last thing a follower reads.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import redis
from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session

from app import config
from app.domain import events
from app.domain.events import JobEvent
from app.domain.states import TERMINAL_STATES
from app.persistence.models import utcnow

logger = logging.getLogger("provisioning.stream")

KEY_PREFIX = "po:job-events:"
# Approximate trimming keeps XADD O(1); a whole job is a few hundred entries.
MAX_ENTRIES = 5000
# Refreshed on every append: a stream outlives its job by a day for late viewers.
KEY_TTL_SECONDS = 24 * 3600
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
END = "end"

_closing = threading.local()
_installed = threading.Event()  # marks are only taken once publish is subscribed


@dataclass(frozen=True)
class StreamEntry:
    id: str
    event: str
    data: dict[str, Any]


def stream_key(job_id: str) -> str:
    return f"{KEY_PREFIX}{job_id}"


def is_stream_id(value: str) -> bool:
    return bool(STREAM_ID.match(value))


@lru_cache(maxsize=8)
def _client(url: str) -> redis.Redis:
    # redis-py pools notice a fork (Celery's prefork children) and reconnect.
    return redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)


def client() -> redis.Redis:
    return _client(config.current().REDIS_URL)


def append(job_id: str, event_name: str, payload: dict[str, Any]) -> str:
    """XADD one entry (trimmed, TTL refreshed); returns its stream id."""
    key = stream_key(job_id)
    pipe = client().pipeline(transaction=False)
    pipe.xadd(
        key,
        {"event": event_name, "data": json.dumps(payload, default=str)},
        maxlen=MAX_ENTRIES,
        approximate=True,
    )
    pipe.expire(key, KEY_TTL_SECONDS)
    entry_id, _ = pipe.execute()
    return str(entry_id)


STREAMED = frozenset({"state", "step", "log"})


def publish(job_event: JobEvent) -> None:
    """The events subscriber: runs after the commit, in the committing process."""
    if job_event.type not in STREAMED:
        return  # e.g. "retry", for metrics; its log line is streamed already
    closing_state = _take_mark(job_event)
    append(job_event.job_id, job_event.type, job_event.as_dict())
    if closing_state is not None:
        payload = end_payload(job_event.job_id, job_event.department_id, closing_state)
        append(job_event.job_id, END, payload)


def end_payload(job_id: str, department_id: str, state: str) -> dict[str, Any]:
    return {
        "type": END,
        "job_id": job_id,
        "department_id": department_id,
        "status": state.lower(),
        "at": utcnow().isoformat().replace("+00:00", "Z"),
    }


def _marks() -> dict[int, tuple[JobEvent, str]]:
    if not hasattr(_closing, "marks"):
        _closing.marks = {}
    return _closing.marks


def _take_mark(job_event: JobEvent) -> str | None:
    mark = _marks().pop(id(job_event), None)
    return mark[1] if mark is not None and mark[0] is job_event else None


# Runs before app.domain.events publishes the commit's events (insert=True),
# while the whole batch is still on the session: the last event a terminal
# commit has for its job is marked, so the "end" entry follows the job's
# closing log lines. Marking the event itself (not "this commit") stays right
# when a subscriber commits a session of its own while events are published.
@event.listens_for(Session, "after_commit", insert=True)
def _mark_job_ends(session: Session) -> None:
    if not _installed.is_set():
        return
    last: dict[str, JobEvent] = {}
    final: dict[str, str] = {}
    for job_event in session.info.get(events.PENDING_KEY, []):
        last[job_event.job_id] = job_event
        if job_event.type == "state" and job_event.data.get("state") in TERMINAL_STATES:
            final[job_event.job_id] = job_event.data["state"]
    for job_id, state in final.items():
        _marks()[id(last[job_id])] = (last[job_id], state)


def read(job_id: str, after: str, block_ms: int | None) -> list[StreamEntry]:
    """Entries after ``after`` ("0" for all); waits up to ``block_ms`` for the first."""
    answer = cast(list[Any], client().xread({stream_key(job_id): after}, count=200, block=block_ms))
    return [_entry(entry_id, fields) for _key, batch in answer or [] for entry_id, fields in batch]


def _entry(entry_id: str, fields: dict[str, str]) -> StreamEntry:
    return StreamEntry(id=entry_id, event=fields["event"], data=json.loads(fields["data"]))


def init_live_stream(app: Flask) -> None:
    """Subscribes the stream publisher in this process (API and Celery workers).

    ``subscribe`` ignores a subscriber it already has, so several apps in one
    process (tests) still append each event once."""
    events.subscribe(publish)
    _installed.set()
    app.extensions["live_stream"] = publish
