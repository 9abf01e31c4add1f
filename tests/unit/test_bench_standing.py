"""The standing cost of running departments: idle share plus drift sweeps."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from benchmarks import standing as standing_module
from benchmarks.metrics import DOCKER_CGROUP
from benchmarks.standing import IdleReading, Standing


def standing(idle: float, sweep: float, departments: int = 10) -> Standing:
    return Standing(
        departments=departments,
        idle_seconds=30.0,
        baseline={"agents": 0.1, "worker": 0.0},
        idle={"agents": 0.1 + idle, "worker": 0.0},
        sweep={"agents": 0.0, "worker": sweep},
        drift_interval=300.0,
    )


def test_what_idling_costs_above_the_baseline_is_scaled_to_a_minute_and_shared() -> None:
    # 0.3 CPU-s more than with no department, in 30 s, is 0.6 CPU-s a minute:
    # 60 ms for each of 10 departments.
    assert standing(idle=0.3, sweep=0.0).per_department_minute_ms("agents") == pytest.approx(60)
    # Less than the baseline (noise) stays negative rather than being hidden.
    assert standing(idle=-0.03, sweep=0.0).per_department_minute_ms("agents") == pytest.approx(-6)


def test_a_drift_sweep_counts_as_often_as_a_minute_holds_one() -> None:
    # A 2 CPU-s sweep every 300 s is 0.4 CPU-s a minute, 40 ms per department.
    assert standing(idle=0.0, sweep=2.0).per_department_minute_ms("worker") == pytest.approx(40)
    off = Standing(10, 30.0, {"worker": 0.0}, {"worker": 0.0}, {"worker": 2.0}, 0.0)
    assert off.per_department_minute_ms("worker") == 0.0  # DRIFT_CHECK_INTERVAL=off


def test_departments_filling_the_cores() -> None:
    # 100 ms a minute per department is 1/600 of a core: 1,200 fill two cores.
    both = standing(idle=0.3, sweep=2.0)
    assert both.total_minute_ms() == pytest.approx(100)
    assert both.departments_filling(2) == pytest.approx(1200)
    assert standing(idle=0.0, sweep=0.0).departments_filling(2) == float("inf")


def test_a_containers_processes_are_found_by_their_cgroup() -> None:
    container = "a3d6e4bb33492ce59b976e66522fd242b80b3b0837edf028dc202fa712783de3"
    v1 = f"9:name=systemd:/docker/{container}\n8:pids:/docker/{container}\n"
    v2 = f"0::/docker/{container}\n"
    host = "0::/user.slice/user-0.slice/session-1.scope\n"
    found = [DOCKER_CGROUP.search(text) for text in (v1, v2, host)]
    assert [m.group(1) if m else None for m in found] == [container, container, None]


def test_an_idle_window_a_drift_sweep_fell_into_is_taken_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readings = iter(
        IdleReading(datetime(2026, 12, 5, 21, minute, tzinfo=UTC), {"api": 2.5}, 1000.0)
        for minute in range(10)
    )
    monkeypatch.setattr(standing_module, "idle_window", lambda *_: next(readings))
    swept = {0: 151, 1: 0}  # minute the window started -> departments a sweep checked since

    class Db:
        def health_checked_since(self, moment: datetime) -> int:
            return swept.get(moment.minute, 151)

    bench = SimpleNamespace(db=Db(), settings=SimpleNamespace(prefix="zb"))
    assert standing_module.quiet_window(bench, 60).started_at.minute == 1  # type: ignore[arg-type]

    swept.clear()  # a sweep in every window: said, not hidden
    with pytest.raises(RuntimeError, match="drift sweep ran in each of 3"):
        standing_module.quiet_window(bench, 60)  # type: ignore[arg-type]
