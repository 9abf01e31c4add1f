"""The status endpoint's estimate: cached medians and the remaining-time rule."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from app.domain.services.estimates import DEFAULT_STEP_SECONDS, TtlCache, expected_seconds

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_medians_are_loaded_once_per_ttl() -> None:
    clock, loads = Clock(), []
    cache = TtlCache(30.0, clock=clock)

    def load() -> dict[tuple[str, str], float]:
        loads.append(clock.now)
        return {("create_database", "create"): float(len(loads))}

    assert cache.get(load) == {("create_database", "create"): 1.0}
    clock.now = 29.9
    assert cache.get(load) == {("create_database", "create"): 1.0}
    clock.now = 30.0
    assert cache.get(load) == {("create_database", "create"): 2.0}
    assert loads == [0.0, 30.0]


def test_a_stale_value_is_served_while_another_thread_refreshes() -> None:
    clock = Clock()
    cache = TtlCache(1.0, clock=clock)
    cache.get(lambda: {("a", "create"): 1.0})
    clock.now = 5.0
    started, release = threading.Event(), threading.Event()

    def slow() -> dict[tuple[str, str], float]:
        started.set()
        release.wait(5)
        return {("a", "create"): 2.0}

    refresher = threading.Thread(target=cache.get, args=(slow,))
    refresher.start()
    started.wait(5)
    assert cache.get(lambda: {("a", "create"): 99.0}) == {("a", "create"): 1.0}
    release.set()
    refresher.join(5)
    assert cache.get(lambda: {}) == {("a", "create"): 2.0}


def test_remaining_seconds_use_the_median_minus_time_already_spent() -> None:
    medians = {("deploy_container", "create"): 4.0}
    started = NOW - timedelta(seconds=1.5)
    assert (
        expected_seconds("deploy_container", "create", "in_progress", started, medians, NOW) == 2.5
    )
    assert expected_seconds("deploy_container", "create", "pending", None, medians, NOW) == 4.0
    late = NOW - timedelta(seconds=10)
    assert expected_seconds("deploy_container", "create", "in_progress", late, medians, NOW) == 0.0
    assert (
        expected_seconds("create_oauth", "create", "pending", None, medians, NOW)
        == DEFAULT_STEP_SECONDS["create_oauth"]
    )
