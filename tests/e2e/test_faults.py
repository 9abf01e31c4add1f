"""Fault injection on the real stack: crashes, broker and database outages,
components down, deadlines and racing API processes.

Every case ends with the job COMPLETED or FAILED (never stuck) and checks each
real system (PostgreSQL, OAuth clients, agent processes, n8n, Caddy) for
leftovers or duplicates. Loopback only; nothing shared is stopped: Redis
outages use a private redis-server, n8n outages a proxy we control, and
Caddy outages the suite's own Caddy.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import psycopg2
import pytest
import requests
from flask.testing import FlaskClient

from app.domain import saga
from app.providers.faults import FaultInjector
from tests.conftest import (
    API_PORT,
    GATEWAY_PORT,
    SLOT,
    TEST_DB,
    Stack,
    department_payload,
)
from tests.e2e.conftest import leftovers, submit, wait_for_job, wait_for_status
from tests.e2e.test_resilience import limits
from tests.support import stack
from tests.support.private_stack import PrivateStack
from tests.support.private_stack import private_stack as start_private_stack
from tests.support.tcp_proxy import TcpProxy

PRIVATE_REDIS_PORT = 6390 + SLOT
PRIVATE_API_PORT = API_PORT + 5
SECOND_API_PORT = API_PORT + 7
JOB_TIMEOUT = 150.0


# --- checks shared by every case ------------------------------------------------


def active_oauth_clients(department_id: str) -> int:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM oauth_clients WHERE department_id = %s "
                "AND revoked_at IS NULL",
                (department_id,),
            )
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def agent_instances(pids: list[int]) -> int:
    """Agents whose parent is not an agent: a server that forks workers would
    otherwise count twice (the agent is one process today, department_agent/serve.py)."""
    live = set(pids)
    return sum(1 for pid in pids if _parent_pid(pid) not in live)


def _parent_pid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after "(comm) state"


def assert_provisioned_exactly_once(live_stack: Stack, payload: dict[str, Any]) -> None:
    """Everything exists, and nothing twice (a resumed step must not duplicate)."""
    department_id = payload["departmentId"]
    found = leftovers(live_stack, department_id)
    assert found.get("schema") and found.get("role"), found
    assert active_oauth_clients(department_id) == 1
    assert agent_instances(found.get("agent_pids", [])) == 1, found
    assert found.get("gateway_routes") == 1, found
    assert sorted(found.get("workflows", [])) == sorted(
        f"{department_id}:{w}" for w in payload["workflows"]
    )


def deprovision_cleanly(
    live_stack: Stack, client: FlaskClient, headers: dict[str, str], department_id: str
) -> None:
    """Frees the agent process (2 cores here) and proves the survivor is removable."""
    response = client.delete(f"/api/deprovision/{department_id}", headers=headers)
    assert response.status_code == 202, response.get_json()
    view = wait_for_job(str(response.get_json()["provisioningId"]), timeout=JOB_TIMEOUT)
    assert view["status"] == "completed", view
    assert leftovers(live_stack, department_id) == {}


def step_view(view: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in view["steps"] if s["name"] == name)


def wait_for_step_status(job_id: str, step_name: str, status: str, timeout: float = 60) -> None:
    from app import config
    from app.domain.services.queries import job_view

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = job_view(uuid.UUID(job_id), config.current())
        if view and step_view(view, step_name)["status"] == status:
            return
        time.sleep(0.1)
    raise AssertionError(f"step {step_name} of {job_id} never reached {status}")


def wait_for_log(job_id: str, fragment: str, timeout: float = 60) -> None:
    from app import config
    from app.domain.services.queries import job_view

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = job_view(uuid.UUID(job_id), config.current())
        if view and any(fragment in line for line in view["logs"]):
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never logged {fragment!r}")


# --- SIGKILL of the worker -----------------------------------------------------


@pytest.mark.parametrize("step", saga.SAGA, ids=[s.name for s in saga.SAGA])
def test_worker_sigkilled_during_each_step_is_taken_over_by_a_fresh_worker(
    step: saga.SagaStep,
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: Any,
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    # Slow the step's first attempt only, so the kill lands inside it.
    faults.arm(department_id, f"{step.provider}.create", mode="delay", seconds=8, times=1)
    job = submit(client, admin_headers, payload)
    wait_for_status(job, step.state.lower())

    live_stack.restart_worker(crash=True)
    view = wait_for_job(job, timeout=JOB_TIMEOUT)

    assert view["status"] == "completed", view
    assert step_view(view, step.name)["attempts"] == 2
    assert any("sweeper: job stalled" in line for line in view["logs"])
    assert_provisioned_exactly_once(live_stack, payload)
    deprovision_cleanly(live_stack, client, admin_headers, department_id)


def test_worker_sigkilled_during_rollback_finishes_the_rollback(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: Any,
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    faults.arm(department_id, "gateway.create", mode="fail")
    faults.arm(department_id, "workflows.delete", mode="delay", seconds=8, times=1)
    job = submit(client, admin_headers, payload)
    wait_for_step_status(job, "deploy_workflows", "compensating")

    live_stack.restart_worker(crash=True)
    view = wait_for_job(job, timeout=JOB_TIMEOUT)

    assert view["status"] == "failed", view
    assert view["error"]["step"] == "configure_gateway"
    for record in saga.RESOURCE_STEPS:
        assert step_view(view, record.name)["status"] == "rolled_back", record.name
    assert step_view(view, "deploy_workflows")["compensationAttempts"] == 2
    assert any("resuming its compensations" in line for line in view["logs"])
    assert leftovers(live_stack, department_id) == {}


# --- Redis restarted under a running job ----------------------------------------


@pytest.fixture(scope="module")
def private_stack(
    live_stack: Stack, test_env: dict[str, str], run_dir: Path
) -> Iterator[PrivateStack]:
    log_dir = run_dir / "private-redis-stack"
    with start_private_stack(test_env, log_dir, PRIVATE_REDIS_PORT, PRIVATE_API_PORT) as private:
        yield private


def test_redis_restarted_mid_job_the_sweeper_resumes_from_the_database(
    private_stack: PrivateStack,
    main_beat_paused: None,
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    # The step ends while Redis is down: the chain's next message cannot be sent,
    # and the message being worked on vanishes with Redis's memory.
    FaultInjector(private_stack.redis_url).arm(
        department_id, "workflows.create", mode="delay", seconds=3, times=1
    )
    response = requests.post(
        f"{private_stack.api_url}/api/provision-department",
        json=payload,
        headers=admin_headers,
        timeout=30,
    )
    assert response.status_code == 202, response.text
    job = str(response.json()["provisioningId"])
    wait_for_status(job, "deploying_workflows")

    private_stack.restart_redis(down_for=8)
    view = wait_for_job(job, timeout=JOB_TIMEOUT)

    assert view["status"] == "completed", view
    # Celery 5.7.0's consumer died on this outage (AttributeError closing the
    # lost connection with a task unacknowledged) and never consumed again.
    worker_log = private_stack.worker.log_path.read_text(errors="replace")
    assert "Unrecoverable error" not in worker_log, private_stack.worker.tail()
    assert_provisioned_exactly_once(live_stack, payload)
    deprovision_cleanly(live_stack, client, admin_headers, department_id)


# --- PostgreSQL connections terminated mid-step ---------------------------------


def terminate_state_db_connections() -> int:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (TEST_DB,),
            )
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def test_postgres_connections_terminated_mid_step_the_job_still_completes(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: Any,
) -> None:
    from app.persistence.database import db

    payload = department_payload()
    department_id = payload["departmentId"]
    faults.arm(department_id, "workflows.create", mode="delay", seconds=5, times=1)
    job = submit(client, admin_headers, payload)
    wait_for_status(job, "deploying_workflows")
    time.sleep(1.5)  # a heartbeat has run: its pooled connection is among the victims

    assert terminate_state_db_connections() > 0  # the step's advisory-lock holder too
    db.dispose()  # ours were cut as well; pre-ping would recover, this is quicker
    view = wait_for_job(job, timeout=JOB_TIMEOUT)

    if view["status"] == "failed":  # whatever the outcome, nothing may leak
        assert leftovers(live_stack, department_id) == {}
    assert view["status"] == "completed", view
    assert_provisioned_exactly_once(live_stack, payload)
    deprovision_cleanly(live_stack, client, admin_headers, department_id)


# --- n8n and Caddy down during their steps -------------------------------------


@dataclass(frozen=True)
class Outage:
    provider: str
    step: str
    setting: str  # the worker setting that names the component's URL
    via_proxy: bool  # shared component: fake its outage; ours: really stop it


OUTAGES = [
    Outage("workflows", "deploy_workflows", "N8N_URL", via_proxy=True),
    # Caddy's admin API is a unix socket a TCP proxy cannot stand in for; the
    # suite's own Caddy may simply be stopped and started instead.
    Outage("gateway", "configure_gateway", "CADDY_ADMIN_URL", via_proxy=False),
]


class Switch(Protocol):
    def stop(self) -> None: ...

    def start(self) -> object: ...


class CaddySwitch:
    """The suite's own Caddy (routes live in memory; ours are re-created by the saga)."""

    def __init__(self, env: dict[str, str], run_dir: Path) -> None:
        self.env = {
            **env,
            "GATEWAY_PORT": str(GATEWAY_PORT),
            "RUN_DIR": str(run_dir / "caddy"),
        }

    def stop(self) -> None:
        stack.run_script(["scripts/caddy.sh", "stop"], self.env, timeout=60)

    def start(self) -> object:
        stack.run_script(["scripts/caddy.sh", "start"], self.env, timeout=60)
        return self


@pytest.fixture()
def outage_switch(
    request: pytest.FixtureRequest, live_stack: Stack, run_dir: Path
) -> Iterator[Switch]:
    """Swaps in a worker with RETRY_BASE=1, whose retry window (about 1+2+4 s,
    less jitter) a test can hit by bringing the component back; the suite's
    0.2 s would make that a race. n8n is reached through a proxy we control."""
    outage: Outage = request.param
    env = {**live_stack.env, "RETRY_BASE": "1"}
    switch: Switch
    if outage.via_proxy:
        target = urlsplit(live_stack.env[outage.setting])
        proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 80).start()
        env[outage.setting] = proxy.url
        switch = proxy
    else:
        switch = CaddySwitch(live_stack.env, run_dir)
    live_stack.worker.stop()
    live_stack.worker = stack.celery_worker(env, live_stack.log_dir, "worker-outage").start()
    yield switch
    switch.start() if not outage.via_proxy else switch.stop()
    live_stack.worker.stop()
    live_stack.worker = stack.celery_worker(
        live_stack.env, live_stack.log_dir, "worker-restored"
    ).start()


@pytest.mark.parametrize("outage_switch", OUTAGES, ids=[o.provider for o in OUTAGES], indirect=True)
def test_component_back_within_the_retry_window_the_job_completes(
    outage_switch: Switch,
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    request: pytest.FixtureRequest,
) -> None:
    outage: Outage = request.node.callspec.params["outage_switch"]
    payload = department_payload()
    outage_switch.stop()
    job = submit(client, admin_headers, payload)

    state = saga.step(outage.step).state.lower()
    wait_for_status(job, state, timeout=90)
    wait_for_log(job, "retrying in")  # the first refused attempt (no other step retries)
    outage_switch.start()
    view = wait_for_job(job, timeout=JOB_TIMEOUT)

    assert view["status"] == "completed", view
    assert step_view(view, outage.step)["attempts"] >= 2
    assert_provisioned_exactly_once(live_stack, payload)
    deprovision_cleanly(live_stack, client, admin_headers, payload["departmentId"])


@pytest.mark.parametrize("outage_switch", OUTAGES, ids=[o.provider for o in OUTAGES], indirect=True)
def test_component_down_past_the_retries_rolls_back(
    outage_switch: Switch,
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: Any,
    request: pytest.FixtureRequest,
) -> None:
    outage: Outage = request.node.callspec.params["outage_switch"]
    payload = department_payload()
    department_id = payload["departmentId"]
    # The component comes back during the rollback, so its compensation can run.
    faults.arm(department_id, f"{outage.provider}.delete", mode="delay", seconds=2, times=1)
    outage_switch.stop()
    job = submit(client, admin_headers, payload)

    wait_for_status(job, "rolling_back", timeout=90)
    outage_switch.start()
    view = wait_for_job(job, timeout=JOB_TIMEOUT)

    assert view["status"] == "failed", view
    assert view["error"]["step"] == outage.step
    assert "gave up after 4 attempts" in view["error"]["message"]
    assert sum("retrying in" in line for line in view["logs"]) >= 3
    undone = saga.SAGA[: saga.STEP_NAMES.index(outage.step) + 1]
    for record in (s for s in undone if s.has_resources):
        assert step_view(view, record.name)["status"] == "rolled_back", record.name
    assert leftovers(live_stack, department_id) == {}


# --- overall deadline during a slow step ----------------------------------------


def test_max_provisioning_time_reached_inside_a_slow_step_rolls_back(
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
    faults: Any,
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    faults.arm(department_id, "workflows.create", mode="delay", seconds=90)

    # The deadline leaves the first three steps ample time even on a loaded machine
    # (a container start alone took 7 s under CI load), so it falls inside the slow one.
    with limits(step_timeout=120, job_timeout=30):
        job = submit(client, admin_headers, payload)
    started = time.monotonic()
    view = wait_for_job(job, timeout=JOB_TIMEOUT)

    assert view["status"] == "failed", view
    assert view["error"]["step"] == "deploy_workflows"
    assert "MAX_PROVISIONING_TIME=30s" in view["error"]["message"]
    assert time.monotonic() - started < 75, "the slow step was not cut at the deadline"
    assert leftovers(live_stack, department_id) == {}


# --- two separate API servers, one request ---------------------------------------


@pytest.fixture()
def second_api(live_stack: Stack) -> Iterator[str]:
    """A second gunicorn instance (its own master and workers) on the same stack."""
    service = stack.api_server(live_stack.env, live_stack.log_dir, SECOND_API_PORT, name="api-2")
    service.start()
    url = f"http://127.0.0.1:{SECOND_API_PORT}"
    stack.wait_http(f"{url}/openapi.json")
    yield url
    service.stop()


def test_same_request_to_two_gunicorn_instances_at_once_makes_exactly_one_job(
    second_api: str,
    live_stack: Stack,
    client: FlaskClient,
    admin_headers: dict[str, str],
) -> None:
    payload = department_payload()
    urls = [f"http://127.0.0.1:{API_PORT}", second_api] * 4
    barrier = threading.Barrier(len(urls))
    answers: list[tuple[int, str]] = []

    def post(base: str) -> None:
        barrier.wait()
        response = requests.post(
            f"{base}/api/provision-department", json=payload, headers=admin_headers, timeout=30
        )
        answers.append((response.status_code, response.json().get("provisioningId", "")))

    threads = [threading.Thread(target=post, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [code for code, _ in answers] == [202] * len(urls), answers
    assert len({job for _, job in answers}) == 1
    assert wait_for_job(answers[0][1], timeout=JOB_TIMEOUT)["status"] == "completed"
    assert_provisioned_exactly_once(live_stack, payload)
    deprovision_cleanly(live_stack, client, admin_headers, payload["departmentId"])
