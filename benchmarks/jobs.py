"""Submitting departments through the API and reading back what the jobs recorded."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2
import requests

from benchmarks.settings import BenchSettings
from benchmarks.timing import ProviderCall

TERMINAL = ("COMPLETED", "FAILED")
CONNECT_ATTEMPTS = 10


def payload(department_id: str) -> dict[str, Any]:
    """The tests' sample department: 2 workflows, 2 tools, 512Mi agent."""
    return {
        "departmentId": department_id,
        "departmentName": "Benchmark Department",
        "businessType": "internal_services",
        "workflows": ["email", "database"],
        "dataRetention": "90d",
        "region": "us-east",
        "resources": {"cpu": "0.5", "memory": "512Mi"},
        "adminEmail": "admin@example.com",
        "googleWorkspaceDomain": "example.com",
        "enabledTools": ["gmail", "database_query"],
        "customConfig": {"greeting": "hi"},
    }


@dataclass(frozen=True)
class StepRow:
    name: str
    status: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class JobRow:
    job_id: str
    department_id: str
    kind: str
    state: str
    created_at: datetime
    completed_at: datetime | None
    error: dict[str, Any] | None
    steps: tuple[StepRow, ...]

    @property
    def wall_seconds(self) -> float:
        end = self.completed_at or self.created_at
        return (end - self.created_at).total_seconds()

    def step(self, name: str) -> StepRow:
        return next(s for s in self.steps if s.name == name)

    def provider_calls(self, calls: Sequence[ProviderCall]) -> list[ProviderCall]:
        """This job's calls: its department's, inside the job's own time window."""
        start = self.created_at.timestamp()
        end = (self.completed_at or self.created_at).timestamp()
        return [
            c for c in calls
            if c.department_id == self.department_id and start <= c.start and c.end <= end
        ]  # fmt: skip


class Api:
    def __init__(self, settings: BenchSettings, token: str) -> None:
        self.base = settings.api_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
        self.session.mount("http://", adapter)

    def submit(self, department_id: str) -> str:
        response = self.session.post(
            f"{self.base}/api/provision-department", json=payload(department_id), timeout=60
        )
        if response.status_code != 202:
            raise RuntimeError(f"submit {department_id}: {response.status_code} {response.text}")
        return str(response.json()["provisioningId"])

    def submit_many(self, department_ids: Sequence[str]) -> list[str]:
        """All at once: one thread per department, so the API sees a real burst."""
        with ThreadPoolExecutor(max_workers=max(1, len(department_ids))) as pool:
            return list(pool.map(self.submit, department_ids))

    def deprovision(self, department_id: str) -> str | None:
        response = self.session.delete(f"{self.base}/api/deprovision/{department_id}", timeout=60)
        if response.status_code != 202:
            return None
        return str(response.json()["provisioningId"])

    def status(self, job_id: str) -> dict[str, Any]:
        response = self.session.get(f"{self.base}/api/provision-status/{job_id}", timeout=30)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


class StateDb:
    """Reads the orchestrator's records directly (polling it does not load the API).

    One persistent autocommit connection: PostgreSQL's max_connections is shared by
    every stack on this machine, so the poller must not need a new one each time.
    """

    def __init__(self, dbname: str) -> None:
        self.dbname = dbname
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=self.dbname)
            self._conn.autocommit = True
        return self._conn

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                with self._connection().cursor() as cur:
                    cur.execute(sql, params)
                    return cur.fetchall()
            except psycopg2.OperationalError:
                self._conn = None
                if attempt == CONNECT_ATTEMPTS - 1:
                    raise
                time.sleep(1 + attempt)
        return []

    def connections(self, databases: Sequence[str]) -> tuple[int, int]:
        """(client connections to `databases`, client connections to the whole server)."""
        rows = self._query(
            "SELECT count(*) FILTER (WHERE datname = ANY(%s)), count(*) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend'",
            (list(databases),),
        )
        return int(rows[0][0]), int(rows[0][1])

    def unfinished(self, job_ids: Sequence[str]) -> int:
        rows = self._query(
            "SELECT count(*) FROM provisioning_jobs"
            " WHERE id = ANY(%s::uuid[]) AND completed_at IS NULL",
            (list(job_ids),),
        )
        return int(rows[0][0])

    def wait(self, job_ids: Sequence[str], timeout: float, poll: float = 0.25) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.unfinished(job_ids) == 0:
                return True
            time.sleep(poll)
        return False

    def admission_counts(self, job_ids: Sequence[str]) -> tuple[int, int, int]:
        """(waiting for a place, running, ended) among these jobs."""
        rows = self._query(
            "SELECT count(*) FILTER (WHERE admitted_at IS NULL AND completed_at IS NULL),"
            " count(*) FILTER (WHERE admitted_at IS NOT NULL AND completed_at IS NULL),"
            " count(*) FILTER (WHERE completed_at IS NOT NULL)"
            " FROM provisioning_jobs WHERE id = ANY(%s::uuid[])",
            (list(job_ids),),
        )
        return int(rows[0][0]), int(rows[0][1]), int(rows[0][2])

    def admission_budgets(self, job_ids: Sequence[str]) -> list[tuple[float, float]]:
        """(seconds waited for a place, seconds of budget from admission) per admitted job."""
        rows = self._query(
            "SELECT extract(epoch FROM admitted_at - created_at),"
            " extract(epoch FROM deadline_at - admitted_at)"
            " FROM provisioning_jobs WHERE id = ANY(%s::uuid[]) AND admitted_at IS NOT NULL",
            (list(job_ids),),
        )
        return [(float(w), float(b or 0)) for w, b in rows]

    def jobs(self, job_ids: Sequence[str]) -> list[JobRow]:
        jobs = self._query(
            "SELECT j.id::text, d.department_id, j.kind, j.state, j.created_at, j.completed_at,"
            " j.error"
            " FROM provisioning_jobs j JOIN departments d ON d.id = j.department_pk"
            " WHERE j.id = ANY(%s::uuid[])",
            (list(job_ids),),
        )
        steps = self._query(
            "SELECT job_id::text, name, status, attempts, started_at, finished_at FROM job_steps"
            " WHERE job_id = ANY(%s::uuid[]) ORDER BY job_id, position",
            (list(job_ids),),
        )
        by_job: dict[str, list[StepRow]] = {}
        for job_id, *step in steps:
            by_job.setdefault(job_id, []).append(StepRow(*step))
        rows = {j[0]: JobRow(*j, steps=tuple(by_job.get(j[0], []))) for j in jobs}
        return [rows[job_id] for job_id in job_ids]

    def health_checked_since(self, moment: datetime) -> int:
        """Departments a drift sweep looked at since ``moment`` (beat sends one every
        DRIFT_CHECK_INTERVAL; it also marks the departments it checked)."""
        rows = self._query("SELECT count(*) FROM departments WHERE last_health_at >= %s", (moment,))
        return int(rows[0][0])

    def some_job_id(self) -> str:
        """A finished provisioning job, for the status endpoint to show."""
        rows = self._query(
            "SELECT id::text FROM provisioning_jobs WHERE kind = 'provision'"
            " AND state = 'COMPLETED' ORDER BY created_at LIMIT 1",
            (),
        )
        return str(rows[0][0])

    def active_departments(self) -> list[str]:
        return [r[0] for r in self._query(
            "SELECT department_id FROM departments WHERE status = 'ACTIVE' ORDER BY created_at", ()
        )]  # fmt: skip


def new_department_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"
