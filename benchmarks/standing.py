"""Issue 16's footprint: what departments cost once they are up and nobody calls.

Three readings: the CPU of every process group over an idle window (nothing
submitted; beat sends its sweeps) before any department exists, the same window
with the departments the run has provisioned so far (their agents waiting), and
the CPU of one drift sweep (`provisioning.detect_drift`, sent to the benchmark's
worker), which asks every component of every department whether it still checks
out and comes every DRIFT_CHECK_INTERVAL. What the second window costs above the
first, plus the sweeps, is the standing CPU of one department per minute, so the
README can say how many departments the cores hold, beside what memory says.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from celery import Celery

from benchmarks import costs, targets
from benchmarks.metrics import agent_memory, fmt, load_average, mem_available_mb
from benchmarks.phases import Bench

SWEEP_TIMEOUT = 600.0
SETTLE_SECONDS = 15.0
WINDOW_ATTEMPTS = 3


@dataclass(frozen=True)
class Standing:
    departments: int
    idle_seconds: float
    baseline: Mapping[str, float]  # CPU-s per group over an idle window, no department up
    idle: Mapping[str, float]  # the same with ``departments`` up
    sweep: Mapping[str, float]  # CPU-s per group for one drift sweep
    drift_interval: float  # seconds between drift sweeps

    def per_department_minute_ms(self, group: str) -> float:
        """CPU ms one department costs per minute in ``group``: its share of what the
        idle window costs above the baseline, plus its share of the drift sweeps a
        minute holds. Noise can make a group's idle share negative; it is kept, so
        the total stays an honest difference."""
        idle = (self.idle[group] - self.baseline[group]) / self.idle_seconds * 60
        sweeps = self.sweep[group] * 60 / self.drift_interval if self.drift_interval else 0.0
        return (idle + sweeps) / self.departments * 1000

    def total_minute_ms(self) -> float:
        return sum(self.per_department_minute_ms(group) for group in self.idle)

    def departments_filling(self, cores: int) -> float:
        """How many departments it takes for their standing cost to fill ``cores``."""
        per_core_share = self.total_minute_ms() / 60_000
        return cores / per_core_share if per_core_share else float("inf")


def default_drift_interval() -> float:
    """The benchmark stack runs with the default (it is not among run.OVERRIDABLE)."""
    from app.config import Settings

    return float(Settings.model_fields["DRIFT_CHECK_INTERVAL"].default)


def drift_sweep(broker_url: str) -> list[str]:
    """Runs one drift sweep on the benchmark's worker and waits for its findings."""
    client = Celery("bench-drift", broker=broker_url, backend=broker_url)
    result = client.send_task("provisioning.detect_drift")
    try:
        return list(result.get(timeout=SWEEP_TIMEOUT))
    finally:
        result.forget()


@dataclass(frozen=True)
class IdleReading:
    started_at: datetime
    cpu: dict[str, float]  # CPU-s per group over the window
    mem_available_mb: float  # at its end


@dataclass(frozen=True)
class Memory:
    agent_processes: int
    agents_pss_mb: float
    available_before_mb: float  # with no department up
    available_now_mb: float


def idle_window(bench: Bench, seconds: float) -> IdleReading:
    """CPU-s per group while nothing is asked of the stack for ``seconds``."""
    time.sleep(SETTLE_SECONDS)  # the last work's stragglers (acks, GC, webhooks) end first
    started_at = datetime.now(UTC)
    spent, _, _ = costs.measure_cpu(
        targets.our_roots(bench), bench.settings.prefix, lambda: time.sleep(seconds)
    )
    return IdleReading(started_at, spent, mem_available_mb())


def quiet_window(bench: Bench, seconds: float) -> IdleReading:
    """An idle window no scheduled drift sweep fell into: beat sends one every
    DRIFT_CHECK_INTERVAL, and with many departments it would be counted twice
    (here and as the sweep measured on its own). The next is minutes away."""
    for _ in range(WINDOW_ATTEMPTS):
        reading = idle_window(bench, seconds)
        if not bench.db.health_checked_since(reading.started_at):
            return reading
    raise RuntimeError(f"a drift sweep ran in each of {WINDOW_ATTEMPTS} idle windows")


def standing_cost(bench: Bench, idle_seconds: float, baseline: IdleReading) -> None:
    settings = bench.settings
    departments = len(bench.db.active_departments())
    if not departments:
        return
    idle = quiet_window(bench, idle_seconds)
    findings: list[str] = []
    sweep, _, sweep_wall = costs.measure_cpu(
        targets.our_roots(bench),
        settings.prefix,
        lambda: findings.extend(drift_sweep(settings.redis_url)),
    )
    standing = Standing(
        departments, idle_seconds, baseline.cpu, idle.cpu, sweep, default_drift_interval()
    )
    memory = Memory(
        *agent_memory(settings.prefix), baseline.mem_available_mb, idle.mem_available_mb
    )
    bench.say(*_section(standing, sweep_wall, findings, memory, os.cpu_count() or 1))


def _section(
    standing: Standing, sweep_wall: float, findings: list[str], memory: Memory, cores: int
) -> list[str]:
    n = standing.departments
    fell = memory.available_before_mb - memory.available_now_mb
    return [
        "",
        f"### 8b. Standing still (issue 16): {n} departments up, {standing.idle_seconds:g} s"
        f" idle, then one drift sweep (load {load_average()})",
        "",
        f"| process group | CPU-s idle, no department | CPU-s idle, {n} departments"
        " | CPU-s of one drift sweep | CPU ms per department per minute |",
        "|---|---|---|---|---|",
        *(
            f"| {g} | {fmt(standing.baseline[g], 2)} | {fmt(standing.idle[g], 2)}"
            f" | {fmt(standing.sweep[g], 2)} | {fmt(standing.per_department_minute_ms(g), 2)} |"
            for g in standing.idle
        ),
        f"| **all of the above** | {fmt(sum(standing.baseline.values()), 2)}"
        f" | {fmt(sum(standing.idle.values()), 2)} | {fmt(sum(standing.sweep.values()), 2)}"
        f" | **{fmt(standing.total_minute_ms(), 2)}** |",
        "",
        f"The drift sweep took {fmt(sweep_wall, 1)} s for {n} departments and found"
        f" {len(findings)} drifted; sweeps come every {standing.drift_interval:g} s"
        " (DRIFT_CHECK_INTERVAL). Standing CPU per department:"
        f" {fmt(standing.total_minute_ms() / 600, 3)} % of a core, so the standing cost alone"
        f" would fill {cores} cores at about {fmt(standing.departments_filling(cores), 0)}"
        f" departments. Memory: {memory.agent_processes} agent processes,"
        f" {fmt(memory.agents_pss_mb, 0)} MiB PSS in all, {fmt(memory.agents_pss_mb / n, 1)} MiB"
        f" per department; MemAvailable {fmt(memory.available_now_mb, 0)} MiB, down"
        f" {fmt(fell, 0)} MiB since the first idle window ({fmt(fell / n, 1)} MiB per department,"
        " everything included: agents, n8n's workflows, PostgreSQL's schemas, caches)."
        f" Both idle windows last {standing.idle_seconds:g} s, each after {SETTLE_SECONDS:g} s"
        " of settling; the first ran before section 2. PostgreSQL, n8n and the Docker engine"
        " are shared with whatever else runs on the machine, so their rows carry its noise.",
    ]
