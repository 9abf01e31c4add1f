"""`make bench`: runs the suite on its own stack and appends the results to RESULTS.md.

    python -m benchmarks.run [--scale 200] [--budget 1080] [--concurrency 10 25 50] ...

The budget (seconds) bounds the measuring; growth stops early to stay inside it,
and teardown always runs (also on Ctrl-C / SIGINT from `timeout`).
"""

from __future__ import annotations

import argparse
import os
import time
import traceback
from functools import partial
from pathlib import Path

from benchmarks import capacity, phases, standing, targets
from benchmarks.jobs import Api, StateDb
from benchmarks.metrics import MemorySampler, docker_storage_driver, load_average, machine_facts
from benchmarks.settings import ROOT, BenchSettings
from benchmarks.stack import BenchStack
from benchmarks.timing import CallSink

RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def parse_args() -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=int(env("SCALE", "200")),
                        help="growth target: departments provisioned")  # fmt: skip
    parser.add_argument("--budget", type=float, default=float(env("BENCH_BUDGET", "900")))
    parser.add_argument("--sequential", type=int, default=10)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[10, 25, 50])
    parser.add_argument("--levels", type=int, nargs="*", default=[1, 4, 16, 64])
    parser.add_argument("--timeline", type=int, default=5,
                        help="departments one after another, the worker marking steps")  # fmt: skip
    parser.add_argument("--load-seconds", type=float, default=5.0)
    parser.add_argument("--idle-seconds", type=float, default=60.0,
                        help="idle window for the standing cost (0: skip)")  # fmt: skip
    parser.add_argument("--growth-batch", type=int, default=40)
    parser.add_argument("--rollbacks", type=int, default=3)
    parser.add_argument("--history-jobs", type=int, default=10_000,
                        help="past jobs seeded for the flat-in-history comparison")  # fmt: skip
    parser.add_argument("--history-concurrency", type=int, default=16)
    parser.add_argument("--burst", type=int, default=int(env("BENCH_BURST", "20")),
                        help="departments at once for the CPU-per-department burst")  # fmt: skip
    parser.add_argument("--capacity-burst", type=int,
                        default=int(env("BENCH_CAPACITY_BURST", "300")),
                        help="at once, default deadline, run last (0: skip)")  # fmt: skip
    parser.add_argument("--min-free-mb", type=float, default=4096)
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser.parse_args()


def header(args: argparse.Namespace, settings: BenchSettings) -> list[str]:
    facts = machine_facts()
    return [
        "",
        f"## Run {facts['date']}",
        "",
        f"Machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory']} RAM, Linux"
        f" {facts['kernel']}, Python {facts['python']}. Load at start (1/5/15 min):"
        f" {load_average()}. Other engineers' test suites share these 2 cores, so every number"
        " here is noisy; the load column says how busy the machine was at that moment.",
        "",
        f"Stack: real PostgreSQL, Redis, Caddy, n8n (shared local instance), department agents;"
        f" API gunicorn {settings.api_workers}x4 threads on :{settings.api_port}, one Celery"
        f" worker (prefork, concurrency {settings.worker_concurrency}), beat; databases"
        f" {settings.state_db}/{settings.tenant_db}, Redis db {settings.redis_db}. Defaults for"
        " STEP_TIMEOUT, MAX_PROVISIONING_TIME, retries and sweeper; rate limits raised."
        f" Options: scale {args.scale}, budget {args.budget:g} s, concurrency {args.concurrency},"
        f" capacity burst {args.capacity_burst}."
        f" Docker storage driver: {docker_storage_driver()}.",
        *_overrides(),
    ]


# Settings a run may take from the environment instead of the defaults.
OVERRIDABLE = ("MAX_ACTIVE_JOBS", "MAX_PROVISIONING_TIME", "STEP_TIMEOUT", "CONTAINER_RUNTIME")


def _overrides() -> list[str]:
    given = [f"{name}={os.environ[name]}" for name in OVERRIDABLE if os.environ.get(name)]
    return (
        ["", f"**Settings from the environment for this run:** {', '.join(given)}."]
        if given
        else []
    )


def measure(bench: phases.Bench, args: argparse.Namespace) -> None:
    # Before anything is provisioned: what the stack costs standing still without departments.
    baseline = standing.idle_window(bench, args.idle_seconds) if args.idle_seconds else None
    overhead = phases.sequential(bench, args.sequential)
    targets.overhead_vs_floor(bench, overhead)
    if args.timeline:
        targets.where_overhead_goes(bench, args.timeline)
    phases.api_latency(bench, args.levels, args.load_seconds)
    targets.flat_in_history(bench, args.history_jobs, args.history_concurrency, args.load_seconds)
    if args.burst:
        targets.cpu_per_department(bench, args.burst)
    points = [phases.growth_point(bench, args.load_seconds)]
    phases.concurrency(bench, args.concurrency)
    points.append(phases.growth_point(bench, args.load_seconds))
    batches, why = phases.grow(
        bench, args.scale, args.growth_batch, args.load_seconds, args.min_free_mb, points
    )
    phases.growth_section(bench, args.scale, args.load_seconds, points, batches, why)
    if baseline is not None:
        standing.standing_cost(bench, args.idle_seconds, baseline)
    phases.rollback(bench, args.rollbacks)
    if args.capacity_burst:
        capacity.admission_burst(bench, args.capacity_burst, targets.our_roots(bench))


def main() -> int:
    args = parse_args()
    settings = BenchSettings()
    stack = BenchStack(settings)
    report = header(args, settings)
    status = 1
    try:
        stack.start()
        assert stack.api is not None and stack.worker is not None and stack.api.process
        assert stack.worker.process is not None
        roots = {"api": stack.api.process.pid, "worker": stack.worker.process.pid}
        databases = (settings.state_db, settings.tenant_db)
        sampler_db = StateDb(settings.state_db)
        counter = partial(sampler_db.connections, databases)
        with MemorySampler(roots, counter, interval=1.0) as sampler:
            bench = phases.Bench(
                settings, stack, Api(settings, stack.token()), StateDb(settings.state_db),
                CallSink(settings.redis_url), sampler, time.monotonic() + args.budget, report,
            )  # fmt: skip
            try:
                measure(bench, args)
                status = 0
            finally:
                report.extend(["", phases.deprovision_all(bench, 150)])
    except (Exception, KeyboardInterrupt):
        report.extend(["", "Run interrupted:", "", "```", traceback.format_exc(limit=3), "```"])
        traceback.print_exc()
    finally:
        with args.results.open("a") as results:
            results.write("\n".join(report) + "\n")
            results.flush()
            teardown = f"Teardown: {'; '.join(stack.teardown())}. Load at end: {load_average()}."
            results.write(teardown + "\n")
        print(f"{teardown}\nappended to {args.results}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
