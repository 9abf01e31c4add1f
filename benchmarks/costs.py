"""Issue 16: Celery's own floor, and the CPU-seconds one department costs.

CPU time is read from /proc (what psutil reads): utime + stime of every process,
plus cutime + cstime (children it has reaped, e.g. a short-lived helper), keyed
by (pid, start time) so a pid reused mid-burst is not confused with its
predecessor. A process is put in one group: the API's and the worker's process
trees, beat, PostgreSQL (the whole server: other stacks on this machine use it
too), n8n, Caddy, department agents (local processes, or every Docker
container's processes), the Docker engine (shared); the machine's total busy
time from /proc/stat is reported beside it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from celery import Celery, chain

from benchmarks.metrics import _is_agent, container_of, percentile, process_tree
from benchmarks.stack import admin_sql

TICK = os.sysconf("SC_CLK_TCK")
GROUPS = ("api", "worker", "beat", "postgresql", "n8n", "caddy", "agents", "docker engine")
ENGINE = ("dockerd", "containerd", "containerd-shim")
Snapshot = dict[tuple[int, int], tuple[str, float]]


def _stat(pid: int) -> tuple[str, int, float] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw.rsplit(")", 1)[1].split()
    # fields[11..14]: utime stime cutime cstime; fields[19]: start time (ticks)
    cpu = sum(int(f) for f in fields[11:15]) / TICK
    return name, int(fields[19]), cpu


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _group(pid: int, name: str, trees: Mapping[int, str], prefix: str) -> str | None:
    from app.providers.agent_process import MANAGED_BY, read_environ

    if pid in trees:
        return trees[pid]
    if name == "postgres":
        return "postgresql"
    if name == "caddy":
        return "caddy"
    if "n8n" in _cmdline(pid) and name.startswith("node"):
        return "n8n"
    if name.startswith(ENGINE):
        return "docker engine"
    if _is_agent(read_environ(pid), MANAGED_BY, prefix) or container_of(pid) is not None:
        return "agents"
    return None


def snapshot(roots: Mapping[str, int], prefix: str) -> Snapshot:
    trees = {pid: group for group, root in roots.items() for pid in process_tree(root)}
    taken: Snapshot = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        group = _group(pid, stat[0], trees, prefix) if stat else None
        if stat and group:
            taken[(pid, stat[1])] = (group, stat[2])
    return taken


def machine_busy_seconds() -> float:
    """All CPUs' non-idle time since boot (every process on the machine)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


def cpu_by_group(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU-seconds per group between two snapshots (processes that exited in between
    are counted only if a tracked parent reaped them)."""
    spent = dict.fromkeys(GROUPS, 0.0)
    for key, (group, cpu) in after.items():
        spent[group] += cpu - before.get(key, (group, 0.0))[1]
    return spent


def measure_cpu(
    roots: Mapping[str, int], prefix: str, work: Callable[[], object]
) -> tuple[dict[str, float], float, float]:
    """(CPU-seconds per group, machine busy seconds, wall seconds) spent during `work`."""
    before, busy, start = snapshot(roots, prefix), machine_busy_seconds(), time.monotonic()
    work()
    wall = time.monotonic() - start
    return cpu_by_group(before, snapshot(roots, prefix)), machine_busy_seconds() - busy, wall


def celery_floor(
    broker_url: str, wait_mark: Callable[[str, float], bool], runs: int
) -> list[float]:
    """Seconds from sending a chain of 7 no-op tasks to its last task running, `runs` times
    one after another, through the benchmark's worker (same pool, acks_late, prefetch 1)."""
    return _chain_floor(broker_url, wait_mark, runs, "bench.noop", lambda: ())


def durable_floor(
    broker_url: str, state_db: str, wait_mark: Callable[[str, float], bool], runs: int
) -> list[float]:
    """The same chain, each task doing the least a step that records itself durably
    must (worker.durable_step): what the saga's bookkeeping could cost at best. One
    row per chain, as a job has one row its steps all write."""
    rows = [str(uuid.uuid4()) for _ in range(runs)]
    values = ", ".join(f"('{row}')" for row in rows)  # our own uuids
    insert = f"INSERT INTO bench_durable_floor (id) VALUES {values}"  # noqa: S608
    admin_sql(DURABLE_TABLE, insert, dbname=state_db)
    pending = iter(rows)
    return _chain_floor(broker_url, wait_mark, runs, "bench.durable_step", lambda: (next(pending),))


DURABLE_TABLE = """CREATE TABLE IF NOT EXISTS bench_durable_floor (
    id uuid PRIMARY KEY, state text NOT NULL DEFAULT 'PENDING',
    attempts integer NOT NULL DEFAULT 0, updated_at timestamptz)"""


def _chain_floor(
    broker_url: str,
    wait_mark: Callable[[str, float], bool],
    runs: int,
    task: str,
    arguments: Callable[[], tuple[str, ...]],
) -> list[float]:
    client = Celery("bench-floor", broker=broker_url)
    client.conf.update(task_serializer="json", accept_content=["json"])
    seconds = []
    for _ in range(runs):
        key = f"po:bench:floor:{uuid.uuid4()}"
        args = arguments()
        tasks = [client.signature(task, args=args, immutable=True) for _ in range(6)]
        tasks.append(client.signature(task, args=(*args, key), immutable=True))
        start = time.monotonic()
        chain(*tasks).apply_async()
        if wait_mark(key, 30):
            seconds.append(time.monotonic() - start)
    return seconds


def floor_p50(seconds: list[float]) -> float:
    return percentile(seconds, 50)


def serving_cpu(api_root: int, dbname: str) -> float:
    """CPU-seconds used so far by the API's processes and the PostgreSQL backends
    connected to `dbname` (their process title names the database): what serving a
    request costs, which, unlike latency, other work on the machine barely moves."""
    total = 0.0
    api = set(process_tree(api_root))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None:
            continue
        backend = stat[0] == "postgres" and f" {dbname} " in _cmdline(pid)
        if pid in api or backend:
            total += stat[2]
    return total
