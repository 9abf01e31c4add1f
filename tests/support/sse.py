"""A small Server-Sent Events client for tests, over a real HTTP connection."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests


@dataclass(frozen=True)
class Event:
    id: str | None
    event: str
    data: dict[str, Any]
    received_at: float  # time.monotonic() when it arrived

    @property
    def sort_key(self) -> tuple[int, int]:
        assert self.id is not None
        millis, sequence = self.id.split("-")
        return int(millis), int(sequence)


def parse(lines: Iterator[str]) -> Iterator[Event]:
    """Events as the SSE spec frames them; comments (keep-alives) are skipped."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                yield Event(
                    fields.get("id"),
                    fields.get("event", "message"),
                    json.loads(fields["data"]),
                    time.monotonic(),
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value


def open_stream(
    url: str, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> requests.Response:
    return requests.get(url, headers=headers, params=params, stream=True, timeout=(5, 60))


def read_until_end(response: requests.Response, limit: float = 150.0) -> list[Event]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    deadline = time.monotonic() + limit
    events: list[Event] = []
    with response:
        for event in parse(response.iter_lines(decode_unicode=True)):
            events.append(event)
            if event.event == "end" or time.monotonic() > deadline:
                break
    return events
