"""The five measurements. Each appends its own Markdown section to the report."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.providers.agent_process import find_agent_pids
from app.providers.faults import FaultInjector
from benchmarks import analysis
from benchmarks.http_load import run_load
from benchmarks.jobs import Api, JobRow, StateDb, new_department_id
from benchmarks.metrics import (
    MemorySampler,
    agent_memory,
    fmt,
    load_average,
    mem_available_mb,
    percentile,
)
from benchmarks.settings import BenchSettings
from benchmarks.stack import BenchStack
from benchmarks.timing import CallSink

JOB_TIMEOUT = 900.0  # seconds to wait for a batch; the jobs' own limit is MAX_PROVISIONING_TIME


@dataclass
class Bench:
    settings: BenchSettings
    stack: BenchStack
    api: Api
    db: StateDb
    sink: CallSink
    sampler: MemorySampler
    deadline: float
    report: list[str] = field(default_factory=list)
    departments: list[str] = field(default_factory=list)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def provision(self, count: int) -> list[JobRow]:
        """Submits `count` departments at once and waits for all of them."""
        ids = [new_department_id(self.settings.prefix) for _ in range(count)]
        self.departments.extend(ids)
        jobs = self.api.submit_many(ids)
        self.db.wait(jobs, JOB_TIMEOUT)
        return self.db.jobs(jobs)

    def say(self, *lines: str) -> None:
        self.report.extend(lines)
        for line in lines:
            print(line, flush=True)


def _ms(seconds: float) -> str:
    return fmt(seconds * 1000, 0)


# -- 2. end-to-end, one at a time ----------------------------------------------
def sequential(bench: Bench, count: int) -> float:
    jobs = [bench.provision(1)[0] for _ in range(count)]
    calls = bench.sink.read_all()
    done = [j for j in jobs if j.state == "COMPLETED"]
    walls = [j.wall_seconds for j in done]
    overheads = [analysis.overhead(j, calls) for j in done]
    bench.say(
        "",
        f"### 2. End-to-end provisioning, {count} departments one after another"
        f" (load {load_average()})",
        "",
        f"Completed {len(done)}/{count}. Wall time (job created_at -> completed_at, from the"
        f" records): p50 {fmt(percentile(walls, 50), 2)} s, p95 {fmt(percentile(walls, 95), 2)} s."
        f" Time inside provider `create` calls: p50"
        f" {fmt(percentile([o.provider for o in overheads], 50), 2)} s."
        f" Orchestration overhead (wall - provider) / wall: p50"
        f" {fmt(percentile([o.percent for o in overheads], 50))} %, p95"
        f" {fmt(percentile([o.percent for o in overheads], 95))} %"
        f" (p50 {_ms(percentile([o.seconds for o in overheads], 50))} ms per job)."
        f" Provider calls recorded by the timed worker: {len(calls)}.",
        "",
        "| step | step p50 ms | step p95 ms | inside provider p50 ms | bookkeeping in step p50 ms"
        " | gap before step p50 ms | jobs retried |",
        "|---|---|---|---|---|---|---|",
    )
    for row in analysis.step_breakdown(done, calls):
        bench.say(
            f"| {row.name} | {_ms(row.step_p50)} | {_ms(row.step_p95)} | {_ms(row.provider_p50)}"
            f" | {_ms(row.step_p50 - row.provider_p50)} | {_ms(row.gap_p50)} | {row.retried} |"
        )
    return percentile([o.seconds for o in overheads], 50)


# -- 1. API latency ------------------------------------------------------------
def api_latency(bench: Bench, levels: Sequence[int], seconds: float) -> None:
    token = bench.api.session.headers["Authorization"].split()[1]
    job_id = bench.db.some_job_id()
    urls = {
        "GET /api/provision-status/<id>": f"{bench.settings.api_url}/api/provision-status/{job_id}",
        "GET /api/departments (perPage 50)": f"{bench.settings.api_url}/api/departments",
    }
    bench.say(
        "",
        f"### 1. API latency on loopback ({len(bench.departments)} departments in the database;"
        f" API: gunicorn {bench.settings.api_workers} workers x 4 threads)",
        "",
        "| endpoint | tool | concurrency | seconds | requests | errors | p50 ms | p90 ms | p99 ms"
        " | req/s | load (1/5/15) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    )
    for name, url in urls.items():
        for level in levels:
            r = run_load(url, token, level, seconds)
            bench.say(
                f"| {name} | {r.tool} | {r.concurrency} | {r.seconds:g} | {r.requests} | {r.errors}"
                f" | {fmt(r.p50_ms)} | {fmt(r.p90_ms)} | {fmt(r.p99_ms)} | {fmt(r.rps, 0)}"
                f" | {load_average()} |"
            )


# -- 3. concurrency ------------------------------------------------------------
def concurrency(bench: Bench, batches: Sequence[int]) -> None:
    bench.say(
        "",
        f"### 3. Departments submitted at once (worker concurrency"
        f" {bench.settings.worker_concurrency}; peaks sampled every second)",
        "",
        "| at once | completed | total s | departments/min | job wall p50 s | job wall p95 s"
        " | overhead p50 % | worker peak RSS / PSS MiB | API peak RSS / PSS MiB"
        " | min MemAvailable MiB | peak PG connections bench / server | load (1/5/15) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    )
    for size in batches:
        bench.sampler.reset()
        jobs = bench.provision(size)
        bench.say(_batch_row(bench, size, jobs))


def _batch_row(bench: Bench, size: int, jobs: Sequence[JobRow]) -> str:
    calls = bench.sink.read_all()
    done = [j for j in jobs if j.state == "COMPLETED"]
    span = analysis.span_seconds(jobs)
    walls = [j.wall_seconds for j in done]
    overheads = [analysis.overhead(j, calls).percent for j in done]
    worker, api = bench.sampler.peaks["worker"], bench.sampler.peaks["api"]
    failures = Counter(
        f"{j.state}: {(j.error or {}).get('message', 'unfinished')}"[:160]
        for j in jobs
        if j.state != "COMPLETED"
    )
    note = f" (not completed: {dict(failures)})" if failures else ""
    ours, server = bench.sampler.peak_connections
    return (
        f"| {size} | {len(done)}/{size}{note} | {fmt(span)} | {fmt(60 * len(done) / span)}"
        f" | {fmt(percentile(walls, 50))} | {fmt(percentile(walls, 95))}"
        f" | {fmt(percentile(overheads, 50))} | {fmt(worker.rss_mb, 0)} / {fmt(worker.pss_mb, 0)}"
        f" | {fmt(api.rss_mb, 0)} / {fmt(api.pss_mb, 0)} | {fmt(bench.sampler.min_available_mb, 0)}"
        f" | {ours} / {server} | {load_average()} |"
    )


# -- 4. growth -----------------------------------------------------------------
GROWTH_HEADER = (
    "| provisioned | list p50 / p99 ms | status p50 / p99 ms | probe provisioning s"
    " | probe overhead % | worker PSS MiB | API PSS MiB | agent processes / PSS MiB"
    " | MemAvailable MiB | load (1/5/15) |"
)
BATCH_HEADER = (
    "| batch (at once) | completed | total s | departments/min | job wall p50 s | job wall p95 s"
    " | overhead p50 % | worker peak RSS / PSS MiB | API peak RSS / PSS MiB"
    " | min MemAvailable MiB | peak PG connections bench / server | load (1/5/15) |"
)


def growth_point(bench: Bench, seconds: float) -> str:
    """List and status latency with N departments, then one department provisioned alone."""
    token = bench.api.session.headers["Authorization"].split()[1]
    job_id = bench.db.some_job_id()
    active = len(bench.db.active_departments())
    listing = run_load(f"{bench.settings.api_url}/api/departments", token, 4, seconds)
    status = run_load(f"{bench.settings.api_url}/api/provision-status/{job_id}", token, 4, seconds)
    probe = bench.provision(1)[0]
    cost = analysis.overhead(probe, bench.sink.read_all())
    bench.sampler.sample()
    worker, api = bench.sampler.peaks["worker"], bench.sampler.peaks["api"]
    agents, agents_pss = agent_memory(bench.settings.prefix)
    state = "" if probe.state == "COMPLETED" else f" {probe.state}"
    row = (
        f"| {active} | {fmt(listing.p50_ms)} / {fmt(listing.p99_ms)}"
        f" | {fmt(status.p50_ms)} / {fmt(status.p99_ms)} | {fmt(probe.wall_seconds, 2)}{state}"
        f" | {fmt(cost.percent)} | {fmt(worker.pss_mb, 0)} | {fmt(api.pss_mb, 0)}"
        f" | {agents} / {fmt(agents_pss, 0)} | {fmt(mem_available_mb(), 0)} | {load_average()} |"
    )
    print(row, flush=True)
    return row


def grow(
    bench: Bench, target: int, batch: int, seconds: float, min_free_mb: float, points: list[str]
) -> tuple[list[str], str]:
    """Provisions in batches up to `target`, measuring after each; (batch rows, why it stopped)."""
    batches: list[str] = []
    while True:
        active = len(bench.db.active_departments())
        if active >= target:
            return batches, f"reached {active} departments"
        if mem_available_mb() < min_free_mb:
            return batches, f"stopped early at {active}: MemAvailable below {min_free_mb:g} MiB"
        if bench.remaining() < 240:
            return batches, f"stopped early at {active}: time budget (BENCH_BUDGET) nearly used"
        bench.sampler.reset()
        jobs = bench.provision(min(batch, target - active))
        batches.append(_batch_row(bench, len(jobs), jobs))
        print(batches[-1], flush=True)
        points.append(growth_point(bench, seconds))


def growth_section(
    bench: Bench, target: int, seconds: float, points: list[str], batches: list[str], why: str
) -> None:
    bench.report.extend(
        [
            "",
            f"### 4. Growth towards {target} provisioned departments: {why}",
            "",
            f"At each point: wrk {seconds:g} s at concurrency 4 on each endpoint, then one probe"
            " department provisioned alone (its wall time and overhead). Points are taken after"
            " section 2, after section 3, and after each growth batch below.",
            "",
            GROWTH_HEADER,
            "|---|---|---|---|---|---|---|---|---|---|",
            *points,
            "",
            "Growth batches (submitted at once):",
            "",
            BATCH_HEADER,
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            *batches,
        ]
    )


# -- 5. rollback ---------------------------------------------------------------
def rollback(bench: Bench, runs: int) -> None:
    bench.stack.restart_worker(fault_injection=True)
    injector = FaultInjector(bench.settings.redis_url)
    bench.say(
        "",
        f"### 5. Rollback after a failure in the last step ({runs} runs, one at a time;"
        " `deployment_check.create` armed to fail; worker restarted with"
        " FAULT_INJECTION_ENABLED=1)",
        "",
        "| run | final state | job wall s | rollback s (failure recorded -> FAILED) | time in"
        " provider `delete` s | steps rolled back | agent processes left | load (1/5/15) |",
        "|---|---|---|---|---|---|---|---|",
    )
    time.sleep(3)  # the restarted worker connects to the broker
    for run in range(1, runs + 1):
        department_id = new_department_id(bench.settings.prefix)
        injector.arm(department_id, "deployment_check.create", mode="fail")
        bench.departments.append(department_id)
        job_id = bench.api.submit(department_id)
        bench.db.wait([job_id], JOB_TIMEOUT)
        injector.clear(department_id)
        bench.say(_rollback_row(bench, run, bench.db.jobs([job_id])[0]))


def _rollback_row(bench: Bench, run: int, job: JobRow) -> str:
    failed_at = job.step("validate_deployment").finished_at
    rollback_s = (
        (job.completed_at - failed_at).total_seconds() if failed_at and job.completed_at else None
    )
    deletes = [c for c in job.provider_calls(bench.sink.read_all()) if c.operation == "delete"]
    undone = sum(1 for s in job.steps if s.status == "rolled_back")
    return (
        f"| {run} | {job.state} | {fmt(job.wall_seconds, 2)}"
        f" | {fmt(rollback_s, 2) if rollback_s is not None else 'n/a'}"
        f" | {fmt(sum(c.seconds for c in deletes), 2)} | {undone}"
        f" | {len(find_agent_pids(job.department_id))} | {load_average()} |"
    )


# -- cleanup -------------------------------------------------------------------
def deprovision_all(bench: Bench, budget: float) -> str:
    """Through the API, as an operator would; whatever is left, teardown removes."""
    started = time.monotonic()
    active = bench.db.active_departments()
    jobs = [j for j in (bench.api.deprovision(d) for d in active) if j is not None]
    finished = bench.db.wait(jobs, budget)
    rows = bench.db.jobs(jobs)
    ok = sum(1 for j in rows if j.state == "COMPLETED")
    elapsed = time.monotonic() - started
    return (
        f"deprovisioned through the API: {ok}/{len(active)} in {elapsed:.0f} s"
        f" ({60 * ok / elapsed:.0f}/min){'' if finished else ', the rest by teardown'}"
    )
