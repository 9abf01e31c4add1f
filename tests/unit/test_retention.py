"""When retention runs and what it deletes: decisions, no running stack."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.celery_app import beat_schedule
from app.config import load_settings
from app.domain.services.retention import cutoff_for
from tests.support.settings_env import REQUIRED, clear_settings_environment

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("retention", "cutoff"),
    [
        ("1d", datetime(2026, 12, 2, 12, 0, tzinfo=UTC)),
        ("2w", datetime(2026, 11, 19, 12, 0, tzinfo=UTC)),
        ("30d", datetime(2026, 11, 3, 12, 0, tzinfo=UTC)),
        ("1y", datetime(2025, 12, 3, 12, 0, tzinfo=UTC)),
    ],
)
def test_the_cutoff_is_the_retention_before_now(retention: str, cutoff: datetime) -> None:
    assert cutoff_for(retention, NOW) == cutoff


def test_a_shorter_retention_deletes_more() -> None:
    assert cutoff_for("7d", NOW) > cutoff_for("30d", NOW) > cutoff_for("6m", NOW)


def test_beat_runs_retention_every_interval_and_not_when_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_settings_environment(monkeypatch)
    default = beat_schedule(load_settings(REQUIRED))["enforce-retention"]
    assert default == {"task": "provisioning.enforce_retention", "schedule": 3600.0}
    monkeypatch.setenv("RETENTION_INTERVAL", "15m")
    assert beat_schedule(load_settings(REQUIRED))["enforce-retention"]["schedule"] == 900.0
    monkeypatch.setenv("RETENTION_INTERVAL", "0")
    assert "enforce-retention" not in beat_schedule(load_settings(REQUIRED))
