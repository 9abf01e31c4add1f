"""Admission's decisions as plain functions: how many start, when a waiting job's
deadline falls, what its status says (services/admission.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from app import config
from app.domain.services.admission import capacity, free_places, moved_deadline
from app.domain.services.estimates import after_waiting
from app.domain.services.job_records import job_timeout_reason
from app.domain.services.status_view import waiting_text as _waiting_text
from tests.support.settings_env import REQUIRED, clear_settings_environment

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings_environment(monkeypatch)


@pytest.mark.parametrize(
    ("places", "running", "free"),
    [(16, 0, 16), (16, 15, 1), (16, 16, 0), (4, 9, 0), (1, 0, 1)],
)
def test_only_free_places_are_filled(places: int, running: int, free: int) -> None:
    # More running than places (the setting was lowered): nothing starts, nothing breaks.
    assert free_places(places, running) == free


def test_capacity_defaults_to_twice_the_worker_processes() -> None:
    assert capacity(config.Settings(**REQUIRED, WORKER_CONCURRENCY=6)) == 12
    assert capacity(config.Settings(**REQUIRED, WORKER_CONCURRENCY=6, MAX_ACTIVE_JOBS=3)) == 3


def test_a_negative_capacity_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="MAX_ACTIVE_JOBS"):
        config.Settings(**REQUIRED, MAX_ACTIVE_JOBS=-1)


def test_waiting_costs_a_job_none_of_its_budget() -> None:
    deadline = T0 + timedelta(seconds=300)
    admitted = T0 + timedelta(minutes=20)
    assert moved_deadline(T0, deadline, admitted) == admitted + timedelta(seconds=300)


def test_a_job_without_a_deadline_keeps_none() -> None:
    assert moved_deadline(T0, None, T0 + timedelta(minutes=5)) is None


def _job(**fields: Any) -> Any:
    return SimpleNamespace(**{"created_at": T0, "admitted_at": None, **fields})


def test_the_timeout_reason_names_the_budget_not_the_wait() -> None:
    admitted = T0 + timedelta(minutes=20)
    job = _job(admitted_at=admitted, deadline_at=admitted + timedelta(seconds=300))
    assert job_timeout_reason(job) == "job exceeded MAX_PROVISIONING_TIME=300s"


def test_the_timeout_reason_of_a_job_from_before_admission_existed() -> None:
    job = _job(deadline_at=T0 + timedelta(seconds=300))
    assert job_timeout_reason(job) == "job exceeded MAX_PROVISIONING_TIME=300s"


@pytest.mark.parametrize(
    ("position", "places", "runs"),
    [(1, 4, 2), (4, 4, 2), (5, 4, 3), (12, 4, 4), (1, 1, 2), (3, 1, 4)],
)
def test_a_waiting_job_is_expected_after_the_rounds_ahead_of_it(
    position: int, places: int, runs: int
) -> None:
    own = T0 + timedelta(seconds=10)  # its own run, were it to start now
    assert after_waiting(T0, own, position, places) == T0 + timedelta(seconds=10 * runs)


def test_the_status_says_how_many_are_ahead() -> None:
    assert _waiting_text(1) == "Waiting for a place (next to start)"
    assert _waiting_text(7) == "Waiting for a place (6 ahead)"
