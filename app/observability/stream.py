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
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import redis
from flask import Flask

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


def _add(pipe: Any, job_id: str, event_name: str, payload: dict[str, Any]) -> None:
    """XADD one entry (trimmed) and refresh the stream's TTL."""
    key = stream_key(job_id)
    pipe.xadd(
        key,
        {"event": event_name, "data": json.dumps(payload, default=str)},
        maxlen=MAX_ENTRIES,
        approximate=True,
    )
    pipe.expire(key, KEY_TTL_SECONDS)


STREAMED = frozenset({"state", "step", "log"})


def publish(batch: list[JobEvent]) -> None:
    """The events subscriber: runs after the commit, in the committing process,
    with the commit's events in order; one pipeline, one round trip for all of
    them (a step commits four to six). A job that ended in this commit gets its
    "end" entry right after its last event here."""
    streamed = [e for e in batch if e.type in STREAMED]
    if not streamed:
        return  # e.g. only "retry", for metrics; its log line is streamed already
    closing = {
        e.job_id: e.data["state"]
        for e in streamed
        if e.type == "state" and e.data.get("state") in TERMINAL_STATES
    }
    last = {e.job_id: e for e in streamed}
    pipe = client().pipeline(transaction=False)
    for job_event in streamed:
        _add(pipe, job_event.job_id, job_event.type, job_event.as_dict())
        if job_event.job_id in closing and last[job_event.job_id] is job_event:
            state = closing[job_event.job_id]
            _add(
                pipe,
                job_event.job_id,
                END,
                end_payload(job_event.job_id, job_event.department_id, state),
            )
    pipe.execute()


def end_payload(job_id: str, department_id: str, state: str) -> dict[str, Any]:
    return {
        "type": END,
        "job_id": job_id,
        "department_id": department_id,
        "status": state.lower(),
        "at": utcnow().isoformat().replace("+00:00", "Z"),
    }


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
    events.subscribe_batch(publish)
    app.extensions["live_stream"] = publish
