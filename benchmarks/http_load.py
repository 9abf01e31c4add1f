"""Bounded HTTP load on loopback: `wrk` when installed, else a threaded Python client.

wrk (Debian package) keeps the load generator's own CPU use small, which matters
on a 2-core machine where it competes with the API it measures. Both report
latency percentiles, requests/s and non-2xx answers for a fixed duration.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from benchmarks.metrics import percentile

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_LATENCY_LINE = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class LoadResult:
    tool: str
    concurrency: int
    seconds: float
    requests: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    rps: float


def run_load(url: str, token: str, concurrency: int, seconds: float) -> LoadResult:
    if shutil.which("wrk"):
        return _wrk(url, token, concurrency, seconds)
    return _python(url, token, concurrency, seconds)


def _wrk(url: str, token: str, concurrency: int, seconds: float) -> LoadResult:
    threads = min(concurrency, 2)
    output = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds:g}s", "--latency",
         "--timeout", "10s", "-H", f"Authorization: Bearer {token}", url],
        check=True, capture_output=True, text=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    latencies = {m[1]: float(m[2]) * _UNITS[m[3]] for m in _LATENCY_LINE.finditer(output)}
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    errors = int(non2xx[1]) if non2xx else 0
    errors += sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    return LoadResult(
        "wrk", concurrency, seconds, int(done[1]) if done else 0, errors,
        latencies.get("50", float("nan")), latencies.get("90", float("nan")),
        latencies.get("99", float("nan")), float(rps[1]) if rps else 0.0,
    )  # fmt: skip


def _python(url: str, token: str, concurrency: int, seconds: float) -> LoadResult:
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client() -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        while time.monotonic() < deadline:
            start = time.perf_counter()
            ok = session.get(url, timeout=10).status_code < 300
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                latencies.append(elapsed)
                errors[0] += 0 if ok else 1

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(client)
    elapsed = time.monotonic() - started
    return LoadResult(
        "python-requests", concurrency, seconds, len(latencies), errors[0],
        percentile(latencies, 50), percentile(latencies, 90), percentile(latencies, 99),
        len(latencies) / elapsed,
    )  # fmt: skip
