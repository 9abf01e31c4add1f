"""Resource planning for a department agent: ``resources.cpu``/``memory`` to limits.

Shared by the runtimes. The local runtime enforces the plan with ``RLIMIT_AS``
and nice/affinity (no cgroups); the docker runtime hands the same numbers to
the engine as real cgroup limits.
"""

from __future__ import annotations

import math
import os
import re
import zlib
from dataclasses import dataclass
from typing import Any

from app.providers.base import ProviderError

# Smaller memory requests are raised to this, and the outputs say so. Measured
# here: with a limit in place (and MALLOC_ARENA_MAX=2, as the runtime sets it)
# the agent, having served /health (waitress, psycopg2 loaded, both threads
# started), peaks at ~76 MiB of address space. Thread stacks and shared
# libraries count towards RLIMIT_AS, so this is address space, not resident
# memory; the floor leaves room for a burst of connections.
MEMORY_FLOOR_BYTES = 128 * 1024**2
# Without cgroups a fractional CPU cannot be capped; a lower priority is the
# closest honest approximation, so 0.5 CPU -> nice 5, 0.1 CPU -> nice 9.
MAX_NICE = 10

_MEMORY_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]i?)?", re.IGNORECASE)
_MEMORY_UNITS = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
}


@dataclass(frozen=True)
class MemoryPlan:
    requested_bytes: int | None
    limit_bytes: int | None

    def as_outputs(self) -> dict[str, Any]:
        return {
            "memoryLimitBytes": self.limit_bytes,
            "memoryRequestedBytes": self.requested_bytes,
            "memoryFloorBytes": MEMORY_FLOOR_BYTES,
            # RLIMIT_AS is per process; the agent is one process.
            "memoryEnforcement": "RLIMIT_AS per process" if self.limit_bytes else "none",
        }


@dataclass(frozen=True)
class CpuPlan:
    requested: str | None
    cores: float | None
    nice: int
    cpus: tuple[int, ...] | None

    def as_output(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "cores": self.cores,
            "nice": self.nice,
            "affinity": list(self.cpus) if self.cpus is not None else "all",
            "enforcement": "nice + sched_setaffinity (whole CPUs only)",
        }


def parse_memory(value: Any) -> int | None:
    """Kubernetes-style quantity (``512Mi``, ``2Gi``, ``1G``, plain bytes) to bytes."""
    if value is None or value == "":
        return None
    match = _MEMORY_PATTERN.fullmatch(str(value).strip())
    if match is None or isinstance(value, bool):
        raise ProviderError(f"invalid memory quantity {value!r}")
    number, unit = match.groups()
    amount = int(float(number) * _MEMORY_UNITS[(unit or "").lower()])
    if amount <= 0:
        raise ProviderError(f"memory quantity must be positive, got {value!r}")
    return amount


def parse_cpu(value: Any) -> float | None:
    """Kubernetes-style CPU (``0.5``, ``1``, ``500m``) to cores."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    try:
        cores = int(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise ProviderError(f"invalid cpu quantity {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(cores) or cores <= 0:
        raise ProviderError(f"invalid cpu quantity {value!r}")
    return cores


def plan_memory(value: Any) -> MemoryPlan:
    requested = parse_memory(value)
    if requested is None:
        return MemoryPlan(None, None)
    return MemoryPlan(requested, max(requested, MEMORY_FLOOR_BYTES))


def plan_cpu(value: Any, department_id: str) -> CpuPlan:
    cores = parse_cpu(value)
    if cores is None:
        return CpuPlan(None, None, 0, None)
    nice = 0 if cores >= 1 else min(MAX_NICE, round((1 - cores) * MAX_NICE))
    allowed = sorted(os.sched_getaffinity(0))
    wanted = math.ceil(cores)
    if wanted >= len(allowed):
        return CpuPlan(str(value), cores, nice, None)
    # A stable per-department offset spreads agents instead of piling them on CPU 0.
    offset = zlib.crc32(department_id.encode()) % len(allowed)
    cpus = tuple(sorted(allowed[(offset + i) % len(allowed)] for i in range(wanted)))
    return CpuPlan(str(value), cores, nice, cpus)
