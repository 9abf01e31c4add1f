"""Percentiles, machine facts and a memory sampler for process trees (from /proc)."""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
# A container's processes sit in .../docker/<64 hex> (cgroupfs, v1 or v2).
DOCKER_CGROUP = re.compile(r"/docker/([0-9a-f]{64})\b")


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return math.nan


def machine_facts() -> dict[str, str]:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kb = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )  # fmt: skip
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "memory": f"{total_kb / 1024**2:.1f} GiB",
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def docker_storage_driver() -> str:
    """The storage driver of the engine agents run on ("none" without an engine):
    it decides what starting an agent costs (vfs copies the whole image)."""
    root = Path(__file__).resolve().parents[1]
    try:
        host = subprocess.run(
            [str(root / "scripts/docker_engine.sh"), "host"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        info = subprocess.run(
            ["docker", "-H", host, "info", "--format", "{{.Driver}}"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return "none"
    return info.stdout.strip() or "unknown"  # fmt: skip


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    children, found, todo = _children_map(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _rss_pss_kb(pid: int) -> tuple[int, int]:
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0, 0
    values = {
        line.split(":")[0]: int(line.split()[1]) for line in rollup[1:] if line.endswith("kB")
    }
    return values.get("Rss", 0), values.get("Pss", 0)


def tree_memory_mb(root: int) -> tuple[float, float]:
    """(RSS summed over the tree, PSS summed over the tree) in MiB; PSS shares pages fairly."""
    totals = [_rss_pss_kb(pid) for pid in process_tree(root)]
    return sum(r for r, _ in totals) / 1024, sum(p for _, p in totals) / 1024


@dataclass
class Peak:
    rss_mb: float = 0.0
    pss_mb: float = 0.0

    def update(self, rss: float, pss: float) -> None:
        self.rss_mb, self.pss_mb = max(self.rss_mb, rss), max(self.pss_mb, pss)


@dataclass
class MemorySampler:
    """Samples named process trees every `interval` seconds; keeps peaks since `reset`."""

    roots: dict[str, int]
    count_connections: Callable[[], tuple[int, int]]  # (the bench stack's, the server's)
    interval: float = 0.5
    peaks: dict[str, Peak] = field(default_factory=dict)
    min_available_mb: float = math.inf
    peak_connections: tuple[int, int] = (0, 0)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> MemorySampler:
        self.reset()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def reset(self) -> None:
        self.peaks = {name: Peak() for name in self.roots}
        self.min_available_mb = math.inf
        self.peak_connections = (0, 0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        for name, root in self.roots.items():
            self.peaks.setdefault(name, Peak()).update(*tree_memory_mb(root))
        self.min_available_mb = min(self.min_available_mb, mem_available_mb())
        ours, server = self.count_connections()
        self.peak_connections = (
            max(self.peak_connections[0], ours),
            max(self.peak_connections[1], server),
        )


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def agent_memory(prefix: str) -> tuple[int, float]:
    """(processes, PSS MiB) of the department agents whose department id starts with
    prefix: local agents by their environment, Docker ones by their container's cgroup
    (a container's environment names only its settings files)."""
    from app.providers.agent_process import MANAGED_BY, read_environ

    containers = department_containers(prefix)
    pids = [
        pid
        for pid in (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
        if _is_agent(read_environ(pid), MANAGED_BY, prefix) or container_of(pid) in containers
    ]
    return len(pids), sum(_rss_pss_kb(pid)[1] for pid in pids) / 1024


def department_containers(prefix: str) -> set[str]:
    """Ids of the running agent containers (``dept-<id>``) of departments whose id
    starts with prefix; none when no engine answers."""
    from app.docker_host import default_docker_host, engine_answers

    host = default_docker_host()
    if not engine_answers(host):
        return set()
    listed = subprocess.run(
        ["docker", "-H", host, "ps", "--no-trunc", "--format", "{{.ID}} {{.Names}}"],
        capture_output=True, text=True, timeout=60, check=False,
    ).stdout  # fmt: skip
    rows = (line.split() for line in listed.splitlines())
    return {row[0] for row in rows if len(row) == 2 and row[1].startswith(f"dept-{prefix}")}


def container_of(pid: int) -> str | None:
    """The Docker container id in the process's cgroup path, if it runs in one."""
    try:
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    found = DOCKER_CGROUP.search(cgroups)
    return found.group(1) if found else None


def _is_agent(environ: dict[str, str], marker: str, prefix: str) -> bool:
    return environ.get("AGENT_MANAGED_BY") == marker and environ.get(
        "AGENT_DEPARTMENT_ID", ""
    ).startswith(prefix)
