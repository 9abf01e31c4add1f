"""Issue 16, flat in history: status and list latency with 10 past jobs vs 10,000.

Past jobs are seeded straight into the state database (one INSERT ... SELECT per
table): deprovisioned departments with completed provisioning jobs, 7 completed
steps and 5 log lines each, as a long-lived installation accumulates them. One
in-flight job is seeded too (its step heartbeat kept fresh while measured), so
the status of a running job, which reads the step medians, is measured as well.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2

from benchmarks.http_load import LoadResult, run_load
from benchmarks.metrics import fmt, load_average

STEPS = (
    "validate_config", "create_database", "create_oauth", "deploy_container",
    "deploy_workflows", "configure_gateway", "validate_deployment",
)  # fmt: skip
JOBS_PER_DEPARTMENT = 10

_DEPARTMENTS = """
INSERT INTO departments (id, department_id, department_name, status, config, resources,
    deletion_protection, config_version, incarnation, created_at, updated_at)
SELECT gen_random_uuid(), %(prefix)s || lpad(d::text, 6, '0'), 'History', %(status)s, '{}', '{}',
    false, 1, gen_random_uuid(), now() - interval '60 days', now() - interval '60 days'
FROM generate_series(1, %(count)s) AS d"""
_JOBS = """
INSERT INTO provisioning_jobs (id, department_pk, kind, state, generation, config, step_timeout,
    created_at, admitted_at, started_at, completed_at, last_activity_at, resume_count)
SELECT gen_random_uuid(), d.id, 'provision', 'COMPLETED', 0, '{}', 60, t.at, t.at, t.at,
    t.at + interval '1 second', t.at + interval '1 second', 0
FROM departments d CROSS JOIN generate_series(1, %(per)s) AS j
CROSS JOIN LATERAL (SELECT now() - interval '50 days' + j * interval '1 hour' AS at) AS t
WHERE d.department_id LIKE %(like)s"""
_STEPS = """
INSERT INTO job_steps (job_id, position, name, action, status, attempts, compensation_attempts,
    started_at, finished_at, heartbeat_at, outputs)
SELECT j.id, s.pos, s.name, 'create', 'completed', 1, 0, j.started_at,
    j.started_at + s.pos * interval '100 milliseconds', NULL, '{}'
FROM provisioning_jobs j JOIN departments d ON d.id = j.department_pk
CROSS JOIN unnest(%(names)s::text[]) WITH ORDINALITY AS s(name, pos)
WHERE d.department_id LIKE %(like)s"""
_LOGS = """
INSERT INTO job_logs (job_id, at, level, step, message)
SELECT j.id, j.started_at + n * interval '1 millisecond', 'INFO', NULL, 'seeded history line ' || n
FROM provisioning_jobs j JOIN departments d ON d.id = j.department_pk
CROSS JOIN generate_series(1, 5) AS n WHERE d.department_id LIKE %(like)s"""
_IN_FLIGHT_JOB = """
INSERT INTO provisioning_jobs (id, department_pk, kind, state, generation, config, step_timeout,
    created_at, admitted_at, started_at, deadline_at, last_activity_at, resume_count)
SELECT %(job)s, id, 'provision', 'DEPLOYING_WORKFLOWS', 0, '{}', 3600, now(), now(), now(),
    now() + interval '1 day', now(), 0 FROM departments WHERE department_id LIKE %(like)s"""
_IN_FLIGHT_STEPS = """
INSERT INTO job_steps (job_id, position, name, action, status, attempts, compensation_attempts,
    started_at, finished_at, heartbeat_at, outputs)
SELECT %(job)s, s.pos, s.name, 'create',
    CASE WHEN s.pos < 5 THEN 'completed' WHEN s.pos = 5 THEN 'in_progress' ELSE 'pending' END,
    CASE WHEN s.pos <= 5 THEN 1 ELSE 0 END, 0,
    CASE WHEN s.pos <= 5 THEN now() END, CASE WHEN s.pos < 5 THEN now() END,
    CASE WHEN s.pos = 5 THEN now() END, '{}'
FROM unnest(%(names)s::text[]) WITH ORDINALITY AS s(name, pos)"""


class History:
    def __init__(self, dbname: str, prefix: str) -> None:
        self._dbname = dbname
        self.prefix = f"{prefix}h"
        self.in_flight = str(uuid.uuid4())

    def _run(self, *statements: tuple[str, dict[str, object]]) -> None:
        conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=self._dbname)
        try:
            with conn, conn.cursor() as cur:
                for sql, params in statements:
                    cur.execute(sql, params)
        finally:
            conn.close()

    def seed_in_flight(self) -> None:
        """One job in DEPLOYING_WORKFLOWS, step 5 of 7 running (never dispatched;
        admitted, or admission would dispatch it)."""
        names = list(STEPS)
        self._run(
            (_DEPARTMENTS, {"prefix": f"{self.prefix}f", "status": "PROVISIONING", "count": 1}),
            (_IN_FLIGHT_JOB, {"job": self.in_flight, "like": f"{self.prefix}f%"}),
            (_IN_FLIGHT_STEPS, {"job": self.in_flight, "names": names}),
        )  # fmt: skip

    def keep_alive(self) -> None:
        """Fresh heartbeat, so the sweeper sees a live step and leaves the job alone."""
        self._run(
            ("UPDATE job_steps SET heartbeat_at = now() WHERE job_id = %(job)s",
             {"job": self.in_flight}),
            ("UPDATE provisioning_jobs SET last_activity_at = now() WHERE id = %(job)s",
             {"job": self.in_flight}),
        )  # fmt: skip

    def seed_past_jobs(self, jobs: int) -> None:
        like = f"{self.prefix}p%"
        departments = max(jobs // JOBS_PER_DEPARTMENT, 1)
        self._run(
            (_DEPARTMENTS, {"prefix": f"{self.prefix}p", "status": "DEPROVISIONED",
                            "count": departments}),
            (_JOBS, {"per": JOBS_PER_DEPARTMENT, "like": like}),
            (_STEPS, {"names": list(STEPS), "like": like}),
            (_LOGS, {"like": like}),
            ("ANALYZE", {}),
        )  # fmt: skip

    def counts(self) -> tuple[int, int]:
        conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=self._dbname)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT (SELECT count(*) FROM provisioning_jobs),"
                            " (SELECT count(*) FROM job_steps)")  # fmt: skip
                jobs, steps = cur.fetchone() or (0, 0)
                return int(jobs), int(steps)
        finally:
            conn.close()


@dataclass(frozen=True)
class Cell:
    load: LoadResult
    cpu_ms: float  # API + its PostgreSQL backends, CPU milliseconds per request


def measure(
    urls: dict[str, str],
    token: str,
    concurrency: int,
    seconds: float,
    before: Callable[[], None],
    cpu: Callable[[], float],
) -> dict[str, Cell]:
    results = {}
    for name, url in urls.items():
        before()
        start = cpu()
        load = run_load(url, token, concurrency, seconds)
        spent = (cpu() - start) * 1000 / max(load.requests, 1)
        results[name] = Cell(load, spent)
    return results


def table(small: dict[str, Cell], large: dict[str, Cell], sizes: tuple[str, str]) -> list[str]:
    lines = [
        f"| endpoint | p50 / p99 ms, {sizes[0]} | req/s | CPU ms/req | p50 / p99 ms, {sizes[1]}"
        " | req/s | CPU ms/req | p99 ratio (target ≤ 1.2) | CPU/req ratio | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, cell in small.items():
        a, b = cell.load, large[name].load
        ratio = b.p99_ms / a.p99_ms if a.p99_ms else float("nan")
        cpu_ratio = large[name].cpu_ms / cell.cpu_ms if cell.cpu_ms else float("nan")
        lines.append(
            f"| {name} | {fmt(a.p50_ms)} / {fmt(a.p99_ms)} | {fmt(a.rps, 0)}"
            f" | {fmt(cell.cpu_ms, 2)} | {fmt(b.p50_ms)} / {fmt(b.p99_ms)} | {fmt(b.rps, 0)}"
            f" | {fmt(large[name].cpu_ms, 2)} | {fmt(ratio, 2)} | {fmt(cpu_ratio, 2)}"
            f" | {a.errors + b.errors} |"
        )
    lines.append(f"\nLoad at the end: {load_average()}.")
    return lines


FLOOR_ENDPOINT = "GET /api/<no such route> (404)"


def floor_lines(floor: Cell, status_p99_ms: float, target_ms: float = 20.0) -> list[str]:
    """The server's own floor beside the status target: a request the same server
    and middleware answer with no token check and no database (a 404), under the
    same load. Its 404s are the expected answer, so they are not counted as errors."""
    load = floor.load
    ratio = status_p99_ms / load.p99_ms if load.p99_ms else float("nan")
    return [
        "",
        "| the server alone | p50 / p99 ms | req/s | CPU ms/req |",
        "|---|---|---|---|",
        f"| {FLOOR_ENDPOINT} | {fmt(load.p50_ms)} / {fmt(load.p99_ms)} | {fmt(load.rps, 0)}"
        f" | {fmt(floor.cpu_ms, 2)} |",
        "",
        f"Status p99 (the slower status cell, larger history) is {fmt(ratio, 2)}x the floor's p99. "
        + (
            f"The floor's p99 alone is over the {target_ms:g} ms target: at this concurrency,"
            " on these shared cores and under this server, no status read could meet it."
            if load.p99_ms > target_ms
            else f"The floor's p99 is within the {target_ms:g} ms target: what is above it"
            " is the status read's own cost."
        ),
    ]
