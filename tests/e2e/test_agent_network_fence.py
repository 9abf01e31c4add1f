"""A department's agent cannot reach the orchestrator's Redis (issue 9, item 4).

Redis holds Celery's queue, the token blocklist and the rate-limit counters,
with no password on this machine. The attack runs where the agent runs: inside
its container as its user (docker runtime), or as its OS user (local runtime),
against every address Redis listens on. The orchestrator, from the same host,
still gets PONG: the refusal is the fence, not a Redis that is down.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

import docker
from app.providers.agent_network import DOCKER_AGENT_UID
from tests.conftest import REDIS_URL, Stack, department_payload
from tests.e2e.conftest import submit, wait_for_job
from tests.e2e.test_faults import step_view
from tests.support import probes
from tests.support.as_user import python_as

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the fence needs root (README)")

PROBE = r"""
import socket, sys
port = int(sys.argv[1])
for host in ("127.0.0.1", "::1"):
    try:
        conn = socket.create_connection((host, port), timeout=5)
        conn.sendall(b"PING\r\n")
        print(host, conn.recv(64).decode().strip())
    except OSError as exc:
        print(host, "refused:", type(exc).__name__)
"""
REDIS_PORT = redis.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs["port"]


def probe_from_agent(env: dict[str, str], department_id: str) -> str:
    if env.get("CONTAINER_RUNTIME") == "docker":
        client = docker.DockerClient(base_url=env["DOCKER_HOST"])  # type: ignore[attr-defined]
        container = client.containers.get(f"dept-{department_id}")
        command = ["python3", "-c", PROBE, str(REDIS_PORT)]
        code, output = container.exec_run(command, user=str(DOCKER_AGENT_UID))
        assert code == 0, output
        return str(output.decode())
    pid = probes.agent_pids(department_id)[0]
    uid = Path(f"/proc/{pid}").stat().st_uid
    interpreter = os.readlink(f"/proc/{pid}/exe")
    return python_as(uid, uid, PROBE, str(REDIS_PORT), python=interpreter)


def test_an_agent_is_refused_by_redis_on_every_address(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    payload = department_payload()
    view = wait_for_job(submit(client, admin_headers, payload))
    assert view["status"] == "completed", view
    outputs = step_view(view, "deploy_container")["outputs"]
    assert f"refused TCP to ports {REDIS_PORT}" in outputs["network"]

    answers = probe_from_agent(live_stack.env, payload["departmentId"])

    assert answers.splitlines() == [
        "127.0.0.1 refused: ConnectionRefusedError",
        "::1 refused: ConnectionRefusedError",
    ], answers
    assert redis.Redis.from_url(REDIS_URL).ping()  # the orchestrator is not fenced
