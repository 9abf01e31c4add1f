"""Two Celery workers share a burst of departments: the tasks spread across both,
and no step runs twice.

Which worker ran which task comes from Celery's own task events (the workers send
them, see `worker_send_task_events`): `task-received` names the task, its
arguments (job id, generation) and the worker; `task-succeeded` the worker that
finished it. The records say the rest: every step of every job ran once, or
once per journaled retry, with one delivery per attempt.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from celery import Celery
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Stack, department_payload
from tests.e2e.conftest import leftovers, submit, wait_for_job
from tests.e2e.test_flower import FLOWER, FLOWER_AUTH, flower  # noqa: F401 - the Flower fixture
from tests.e2e.test_resilience import limits
from tests.support import stack

BURST = 12
SECOND_WORKER = "worker-scale"
STEP_TASK_PREFIX = "provisioning.step."
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class TaskEvents:
    """Listens to the workers' task events on the broker, in a background thread."""

    celery: Celery
    # task id -> every delivery of it (a redelivered message keeps its id)
    received: dict[str, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))
    succeeded: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    workers_seen: set[str] = field(default_factory=set)
    _receiver: Any = None
    _thread: threading.Thread | None = None

    def _on_received(self, event: dict[str, Any]) -> None:
        job = UUID.search(str(event.get("args", "")))
        self.received[event["uuid"]].append(
            {
                "name": event.get("name", ""),
                "job": job.group(0) if job else "",
                "worker": event["hostname"],
            }
        )

    def _on_succeeded(self, event: dict[str, Any]) -> None:
        self.succeeded[event["uuid"]].append(event["hostname"])

    def _on_any(self, event: dict[str, Any]) -> None:
        if event.get("type", "").startswith("worker-"):
            self.workers_seen.add(event["hostname"].split("@")[0])

    def _run(self) -> None:
        with self.celery.connection_for_read() as connection:
            self._receiver = self.celery.events.Receiver(
                connection,
                handlers={
                    "task-received": self._on_received,
                    "task-succeeded": self._on_succeeded,
                    "*": self._on_any,
                },
            )
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    @contextmanager
    def listening(self) -> Iterator[TaskEvents]:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        try:
            yield self
        finally:
            if self._receiver is not None:
                self._receiver.should_stop = True
            self._thread.join(timeout=10)

    def wait_for_workers(self, names: set[str], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not names <= self.workers_seen:
            assert time.monotonic() < deadline, f"workers seen: {self.workers_seen}, want {names}"
            time.sleep(0.2)

    def step_tasks(self, job_ids: set[str]) -> dict[str, list[dict[str, str]]]:
        return {
            task_id: deliveries
            for task_id, deliveries in self.received.items()
            if deliveries[0]["name"].startswith(STEP_TASK_PREFIX)
            and deliveries[0]["job"] in job_ids
        }


@contextmanager
def second_worker(live_stack: Stack) -> Iterator[stack.Service]:
    worker = stack.celery_worker(live_stack.env, live_stack.log_dir, SECOND_WORKER, concurrency=6)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def deprovision_all(
    client: FlaskClient, headers: dict[str, str], department_ids: list[str]
) -> None:
    for department_id in department_ids:
        response = client.delete(f"/api/deprovision/{department_id}", headers=headers)
        if response.status_code == 202:
            wait_for_job(str(response.get_json()["provisioningId"]), timeout=120)


def not_completed(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a failed run needs to be understood: each unfinished job's error,
    step states and the tail of its journal."""
    return [
        {
            "id": v["provisioningId"],
            "status": v["status"],
            "error": v["error"],
            "steps": {s["name"]: (s["status"], s["attempts"]) for s in v["steps"]},
            "logs": v["logs"][-12:],
        }
        for v in views
        if v["status"] != "completed"
    ]


def flower_worker_names() -> set[str]:
    """The workers Flower shows (its API asks them over the broker)."""
    response = requests.get(
        f"{FLOWER}/api/workers", params={"refresh": "true"}, auth=FLOWER_AUTH, timeout=30
    )
    response.raise_for_status()
    return {name.split("@")[0] for name in response.json()}


@pytest.mark.usefixtures("flower")
def test_a_burst_spreads_over_two_workers_and_no_step_runs_twice(
    live_stack: Stack,
    app: Flask,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    payloads = [department_payload() for _ in range(BURST)]
    department_ids = [p["departmentId"] for p in payloads]
    events = TaskEvents(app.extensions["celery"])
    try:
        with events.listening(), second_worker(live_stack):
            events.wait_for_workers({live_stack.worker.name, SECOND_WORKER})
            # This test is about where steps run, not how fast: twelve agent
            # containers created at once on the vfs storage driver (a full copy of
            # the image each) took over 30 s apiece on a loaded 2-core machine.
            with ThreadPoolExecutor(max_workers=BURST) as pool, limits(180, 900):
                jobs = list(pool.map(lambda p: submit(client, admin_headers, p), payloads))
            views = [wait_for_job(job, timeout=600) for job in jobs]
            time.sleep(2)  # the last task-succeeded events are on their way
            shown_by_flower = flower_worker_names()

        assert [v["status"] for v in views] == ["completed"] * BURST, not_completed(views)
        assert {live_stack.worker.name, SECOND_WORKER} <= shown_by_flower, shown_by_flower
        # A step may be retried by design (a health check that met a busy API
        # answers on its next attempt); each retry is journaled. What must never
        # happen is an attempt nobody asked for, or a message run twice.
        attempts = {
            (v["provisioningId"], s["name"]): s["attempts"] for v in views for s in v["steps"]
        }
        retried = sum(n - 1 for n in attempts.values())
        journaled = sum(
            1 for v in views for line in v["logs"] if "failed (" in line and "retrying in" in line
        )
        assert min(attempts.values()) == 1 and retried == journaled, (attempts, journaled)

        deliveries = events.step_tasks(set(jobs))
        runs = Counter(
            (d["job"], d["name"].removeprefix(STEP_TASK_PREFIX))
            for ds in deliveries.values()
            for d in ds
        )
        # One delivery per attempt: a retry is a new delivery, a duplicate one more.
        assert len(runs) == BURST * 7 and runs == attempts, (runs, attempts)
        # The last delivery of a task ran it to the end (a retry may land on the other worker).
        tasks = {task_id: ds[-1] for task_id, ds in deliveries.items()}
        finishers = {task_id: events.succeeded.get(task_id, []) for task_id in tasks}
        assert all(finishers[t] == [task["worker"]] for t, task in tasks.items()), finishers

        per_worker = Counter(task["worker"].split("@")[0] for task in tasks.values())
        workers_per_job = {
            job: {t["worker"] for t in tasks.values() if t["job"] == job} for job in jobs
        }
        spread = f"step tasks per worker: {dict(per_worker)}"
        print(spread, {job[:8]: sorted(w) for job, w in workers_per_job.items()})
        assert set(per_worker) == {live_stack.worker.name, SECOND_WORKER}, spread
        assert any(len(workers) == 2 for workers in workers_per_job.values()), workers_per_job
    finally:
        deprovision_all(client, admin_headers, department_ids)
    for department_id in department_ids:
        assert leftovers(live_stack, department_id) == {}
