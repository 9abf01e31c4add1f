"""The periodic tasks come from one table (app.celery_app.beat_schedule)."""

from __future__ import annotations

from app.celery_app import beat_schedule
from app.config import load_settings
from tests.support.settings_env import REQUIRED


def test_the_beat_schedule_is_built_in_one_place_and_zero_turns_a_task_off() -> None:
    schedule = beat_schedule(load_settings(REQUIRED))
    assert {"sweep-stalled-jobs", "redeliver-overdue-webhooks", "detect-drift"} <= set(schedule)
    assert schedule["sweep-stalled-jobs"]["task"] == "provisioning.sweep"
    quiet = beat_schedule(load_settings({**REQUIRED, "DRIFT_CHECK_INTERVAL": "0"}))
    assert "detect-drift" not in quiet
