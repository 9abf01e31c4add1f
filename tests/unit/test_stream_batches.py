"""A commit's events reach the live stream in one Redis round trip, in order,
with the "end" entry right after the last event of a job that ended (issue 16:
one pipeline per event cost a step four to six round trips)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from app.domain import events
from app.observability import stream

AT = datetime(2026, 12, 3, tzinfo=UTC)


def _event(kind: str, job: str, **data: Any) -> events.JobEvent:
    return events.JobEvent(kind, job, f"dept-{job}", "provision", AT, data)


class FakePipeline:
    def __init__(self, sent: list[list[tuple[str, str]]]) -> None:
        self.sent, self.commands = sent, []  # type: ignore[var-annotated]

    def xadd(self, key: str, fields: dict[str, str], **_: Any) -> None:
        self.commands.append((key.removeprefix(stream.KEY_PREFIX), fields["event"]))

    def expire(self, key: str, seconds: int) -> None:
        assert seconds == stream.KEY_TTL_SECONDS

    def execute(self) -> None:
        self.sent.append(self.commands)


@pytest.fixture()
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[str, str]]]:
    sent: list[list[tuple[str, str]]] = []
    fake = SimpleNamespace(pipeline=lambda transaction: FakePipeline(sent))
    monkeypatch.setattr(stream, "client", lambda: fake)
    return sent


def test_a_commits_events_go_in_one_round_trip_in_order(round_trips: list[Any]) -> None:
    stream.publish([
        _event("state", "a", previous="PENDING", state="VALIDATING"),
        _event("step", "a", step="validate_config", status="in_progress"),
        _event("retry", "a", step="validate_config"),  # for metrics only
        _event("log", "a", message="Validating"),
    ])  # fmt: skip
    assert round_trips == [[("a", "state"), ("a", "step"), ("a", "log")]]


def test_the_end_entry_follows_the_last_event_of_the_job_that_ended(
    round_trips: list[Any],
) -> None:
    stream.publish([
        _event("state", "a", previous="VALIDATING_DEPLOYMENT", state="COMPLETED"),
        _event("log", "b", message="admitted"),
        _event("log", "a", message="Completed"),
        _event("state", "b", previous="PENDING", state="VALIDATING"),
    ])  # fmt: skip
    assert round_trips == [
        [("a", "state"), ("b", "log"), ("a", "log"), ("a", "end"), ("b", "state")]
    ]


def test_nothing_to_stream_costs_no_round_trip(round_trips: list[Any]) -> None:
    stream.publish([_event("retry", "a", step="create_oauth")])
    assert round_trips == []


def test_batch_subscribers_hear_the_whole_commit_once_and_a_failure_stops_no_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    heard: list[Any] = []

    def broken(_batch: list[events.JobEvent]) -> None:
        raise RuntimeError("Redis is down")

    monkeypatch.setattr(events, "_batch_subscribers", [broken, heard.append])
    monkeypatch.setattr(events, "_subscribers", [heard.append])
    batch = [_event("state", "a", state="VALIDATING"), _event("log", "a", message="m")]
    session = SimpleNamespace(info={events.PENDING_KEY: list(batch)})
    events._publish_committed(session)
    assert heard == [batch, batch[0], batch[1]]
    assert events.PENDING_KEY not in session.info


def test_an_event_is_streamed_with_its_public_fields_only() -> None:
    event = events.JobEvent(
        "step", "j1", "dept-j1", "provision", AT, {"step": "create_oauth", "attempts": 2},
        callback_url="http://hooks.example/x",
    )  # fmt: skip

    payload = event.as_dict()
    payload["data"]["attempts"] = 3

    assert payload == {
        "type": "step", "job_id": "j1", "department_id": "dept-j1", "kind": "provision",
        "at": "2026-12-03T00:00:00Z", "data": {"step": "create_oauth", "attempts": 3},
    }  # fmt: skip
    assert event.data["attempts"] == 2  # the payload is the stream's own copy
