"""Server-Sent Events over a job's Redis Stream, bounded in time and number.

gunicorn serves the API with a few threads per process and an open stream
holds one, so a process serves at most MAX_STREAMS_PER_PROCESS at a time and
each closes after MAX_STREAM_SECONDS; EventSource clients reconnect with
Last-Event-ID and lose nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from app.domain.services.live import JobBrief
from app.observability import stream
from app.observability.stream import StreamEntry

KEEPALIVE_SECONDS = 15.0
MAX_STREAM_SECONDS = 300.0
MAX_STREAMS_PER_PROCESS = 2
RECONNECT_MS = 2000
# A job terminal for this long has had its end entry appended, if Redis took it.
END_GRACE = timedelta(seconds=3)


class StreamSlots:
    """Counts open streams so they can never take every API thread."""

    def __init__(self, limit: int) -> None:
        self._semaphore = threading.BoundedSemaphore(limit)

    def try_acquire(self) -> bool:
        return self._semaphore.acquire(blocking=False)

    def release(self) -> None:
        self._semaphore.release()


slots = StreamSlots(MAX_STREAMS_PER_PROCESS)


def frame(entry: StreamEntry, scrub: Callable[[Any], Any] | None = None) -> str:
    data = scrub(entry.data) if scrub is not None else entry.data
    return f"id: {entry.id}\nevent: {entry.event}\ndata: {json.dumps(data)}\n\n"


def synthetic_end(brief: JobBrief) -> str:
    """An end for a job whose stream lost or never had one (expired, Redis outage).

    It has no id: there is nothing after it to resume from."""
    payload = stream.end_payload(brief.job_id, brief.department_id, brief.state)
    return f"event: {stream.END}\ndata: {json.dumps(payload)}\n\n"


def follow(
    job_id: str,
    after: str,
    brief: Callable[[], JobBrief | None],
    max_seconds: float = MAX_STREAM_SECONDS,
    scrub: Callable[[Any], Any] | None = None,
) -> Iterator[str]:
    """SSE text for every entry after ``after``, until the end entry or the time
    bound; ``scrub`` rewrites each entry's data (redaction for department tokens)."""
    yield f"retry: {RECONNECT_MS}\n\n"
    deadline = time.monotonic() + max_seconds
    block_ms: int | None = None  # the first read answers at once
    while (remaining := deadline - time.monotonic()) > 0:
        batch = stream.read(job_id, after, block_ms)
        block_ms = max(int(min(KEEPALIVE_SECONDS, remaining) * 1000), 1)
        for entry in batch:
            yield frame(entry, scrub)
            after = entry.id
            if entry.event == stream.END:
                return
        if not batch:
            current = brief()
            if current is not None and current.finished_before(END_GRACE):
                yield synthetic_end(current)
                return
            yield ": keep-alive\n\n"
    yield f": closing after {max_seconds:.0f}s; reconnect with Last-Event-ID {after}\n\n"
