"""Who hears of a job's state changes, decided without a query (issue 16: the
webhook subscriber used to read both configurations on every state change)."""

from __future__ import annotations

from datetime import UTC, datetime

from app.domain import events
from app.domain.services.webhooks import record_deliveries
from app.domain.webhook_targets import callback_url, target_urls
from tests.support.settings_env import REQUIRED


def test_the_jobs_callback_wins_over_the_departments() -> None:
    assert callback_url({"callbackUrl": "https://a/x"}, {"callbackUrl": "https://b/y"}) == (
        "https://a/x"
    )
    assert callback_url({}, {"callbackUrl": "https://b/y"}) == "https://b/y"
    assert callback_url(None, None) is None
    assert callback_url({"callbackUrl": 42}, {}) is None  # not a URL: nobody


def test_configured_urls_come_first_and_each_once() -> None:
    assert target_urls("https://a/x", ["https://ops/h", "https://a/x"]) == [
        "https://ops/h",
        "https://a/x",
    ]
    assert target_urls(None, []) == []


def test_nobody_to_tell_costs_no_database_work() -> None:
    """The database is never touched (it is not even set up in this test)."""
    from app.config import Settings

    settings = Settings(**REQUIRED)
    event = events.JobEvent("state", "5f0c8a9e-0000-4000-8000-000000000001", "hr", "provision",
                            datetime.now(UTC), {"state": "COMPLETED"})  # fmt: skip
    assert record_deliveries(event, settings) == []


def test_the_callback_is_not_part_of_the_streamed_payload() -> None:
    event = events.JobEvent("log", "j", "hr", "provision", datetime(2026, 12, 3, tzinfo=UTC),
                            {"message": "m"}, callback_url="https://a/x")  # fmt: skip
    assert "callback_url" not in event.as_dict()
    assert event.as_dict()["at"] == "2026-12-03T00:00:00Z"
