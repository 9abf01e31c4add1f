"""Timeouts, concurrency and a worker killed mid-step, on the real stack."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from flask.testing import FlaskClient

from app import config
from tests.conftest import TEST_DB, Stack, department_payload
from tests.e2e.conftest import leftovers, submit, wait_for_job, wait_for_status
from tests.support import probes


@contextmanager
def limits(step_timeout: float, job_timeout: float, **more: object) -> Iterator[None]:
    """Limits are fixed per job when it is submitted; submit with small ones
    (``more``: other settings of the submitting process, MAX_ACTIVE_JOBS)."""
    original = config.current()
    changes = {"STEP_TIMEOUT": step_timeout, "MAX_PROVISIONING_TIME": job_timeout, **more}
    config.install(original.model_copy(update=changes))
    try:
        yield
    finally:
        config.install(original)


def test_a_step_past_step_timeout_rolls_back_with_a_timeout_reason(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: object,
) -> None:
    payload = department_payload()
    faults.arm(payload["departmentId"], "container.create", mode="delay", seconds=10)  # type: ignore[attr-defined]

    with limits(step_timeout=2, job_timeout=120):
        job = submit(client, admin_headers, payload)
    view = wait_for_job(job)

    assert view["status"] == "failed"
    assert view["error"]["step"] == "deploy_container"
    assert "STEP_TIMEOUT=2s" in view["error"]["message"]
    assert leftovers(live_stack, payload["departmentId"]) == {}


def test_a_job_past_max_provisioning_time_rolls_back_with_a_timeout_reason(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: object,
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    for provider in ("database", "oauth", "workflows"):
        faults.arm(department_id, f"{provider}.create", mode="delay", seconds=2)  # type: ignore[attr-defined]

    with limits(step_timeout=30, job_timeout=5):
        job = submit(client, admin_headers, payload)
    view = wait_for_job(job)

    assert view["status"] == "failed"
    assert "MAX_PROVISIONING_TIME=5s" in view["error"]["message"]
    assert leftovers(live_stack, department_id) == {}


def test_five_departments_at_once_all_complete_isolated(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    payloads = [department_payload() for _ in range(5)]
    with ThreadPoolExecutor(max_workers=5) as pool:
        jobs = list(pool.map(lambda p: submit(client, admin_headers, p), payloads))
    views = [wait_for_job(job, timeout=180) for job in jobs]

    assert [v["status"] for v in views] == ["completed"] * 5, [v["error"] for v in views]
    ports = set()
    for payload in payloads:
        department_id = payload["departmentId"]
        found = leftovers(live_stack, department_id)
        assert found["schema"] and found["role"] and found["oauth_client"]
        assert found["gateway_routes"] == 1
        assert len(found["workflows"]) == len(payload["workflows"])
        ports.add(
            next(
                s
                for s in views[payloads.index(payload)]["steps"]
                if s["name"] == "deploy_container"
            )["outputs"]["port"]
        )
    assert len(ports) == 5


def test_worker_killed_mid_step_is_resumed_by_the_sweeper_without_duplicates(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: object,
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    faults.arm(department_id, "workflows.create", mode="delay", seconds=8, times=1)  # type: ignore[attr-defined]
    job = submit(client, admin_headers, payload)
    wait_for_status(job, "deploying_workflows")

    live_stack.restart_worker(crash=True)  # SIGKILL: no errback, no ack
    view = wait_for_job(job, timeout=120)

    assert view["status"] == "completed", view
    workflows_step = next(s for s in view["steps"] if s["name"] == "deploy_workflows")
    assert workflows_step["attempts"] == 2
    assert any("sweeper: job stalled" in line for line in view["logs"])
    found = leftovers(live_stack, department_id)
    assert len(found["agent_pids"]) >= 1 and found["gateway_routes"] == 1
    assert sorted(found["workflows"]) == sorted(
        f"{department_id}:{w}" for w in payload["workflows"]
    )
    assert probes.oauth_client_active(TEST_DB, department_id)


def test_the_sweeper_leaves_queued_jobs_alone_and_resends_lost_ones(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    """A quiet PENDING job with messages waiting is queued, not lost: re-sending it
    would push it to the back of the queue. Once the broker holds nothing, it is lost."""
    import time
    import uuid

    import redis

    from app.domain.services.sweeper import sweep

    live_stack.beat.stop()
    live_stack.worker.stop()
    try:
        job = submit(client, admin_headers, department_payload())
        time.sleep(float(live_stack.env["STALL_TIMEOUT"]) + 1)

        assert uuid.UUID(job) not in {a.job_id for a in sweep(config.current())}

        redis.Redis.from_url(live_stack.env["REDIS_URL"]).delete("celery")  # the message is lost
        resumed = [a for a in sweep(config.current()) if a.job_id == uuid.UUID(job)]
        assert [(a.action, a.generation) for a in resumed] == [("resume", 2)]
    finally:
        live_stack.restart_worker()
        live_stack.restart_beat()
    assert wait_for_job(job)["status"] == "completed"
