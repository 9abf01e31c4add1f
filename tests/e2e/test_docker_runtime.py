"""Faults of the `docker` runtime on the real stack: the engine unreachable mid-step,
a container killed, the agent image missing.

The engine is shared with other checkouts on this machine, so it is never
stopped here: the worker reaches it through a TCP relay the test cuts and
restores, which is what a stopped engine looks like from the orchestrator
(connection refused, open connections dropped).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

import docker
from tests.conftest import Stack, department_payload
from tests.e2e.conftest import submit, wait_for_job, wait_for_status
from tests.e2e.test_faults import (
    JOB_TIMEOUT,
    assert_provisioned_exactly_once,
    deprovision_cleanly,
    leftovers,
    step_view,
    wait_for_log,
)
from tests.support import stack


@pytest.fixture(autouse=True)
def _docker_only(live_stack: Stack) -> None:
    if live_stack.env.get("CONTAINER_RUNTIME") != "docker":
        pytest.skip("the suite runs on another container runtime")


class EngineRelay:
    """tcp://127.0.0.1:<port> relayed to the engine's unix socket; stop() cuts it."""

    def __init__(self, unix_path: str) -> None:
        self.unix_path = unix_path
        self.port = 0
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()

    @property
    def docker_host(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> EngineRelay:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in list(self._open):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
        self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.unix_path)
            self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(src, dst), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def worker_with(live_stack: Stack, **overrides: str) -> Iterator[None]:
    """A worker with some settings changed, then the suite's own worker back."""
    live_stack.worker.stop()
    env = {**live_stack.env, **overrides}
    live_stack.worker = stack.celery_worker(env, live_stack.log_dir, "worker-docker").start()
    try:
        yield
    finally:
        live_stack.worker.stop()
        live_stack.worker = stack.celery_worker(
            live_stack.env, live_stack.log_dir, "worker-docker-restored"
        ).start()


def engine(live_stack: Stack) -> Any:
    return docker.DockerClient(base_url=live_stack.env["DOCKER_HOST"])  # type: ignore[attr-defined]


def department_container(live_stack: Stack, department_id: str) -> Any:
    [container] = engine(live_stack).containers.list(
        all=True, filters={"label": f"department-id={department_id}"}
    )
    return container


def test_engine_unreachable_mid_step_then_back_the_job_completes(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    relay = EngineRelay(live_stack.env["DOCKER_HOST"].removeprefix("unix://")).start()
    with worker_with(live_stack, DOCKER_HOST=relay.docker_host, RETRY_BASE="1"):
        payload = department_payload()
        relay.stop()
        job = submit(client, admin_headers, payload)
        wait_for_status(job, "deploying_container", timeout=90)
        wait_for_log(job, "retrying in")
        relay.start()
        view = wait_for_job(job, timeout=JOB_TIMEOUT)
    relay.stop()
    assert view["status"] == "completed", view
    assert step_view(view, "deploy_container")["attempts"] >= 2
    assert_provisioned_exactly_once(live_stack, payload)
    deprovision_cleanly(live_stack, client, admin_headers, payload["departmentId"])


def test_engine_unreachable_past_the_retries_rolls_back_cleanly(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    relay = EngineRelay(live_stack.env["DOCKER_HOST"].removeprefix("unix://"))
    with worker_with(live_stack, DOCKER_HOST=relay.start().docker_host):
        relay.stop()
        payload = department_payload()
        view = wait_for_job(submit(client, admin_headers, payload), timeout=JOB_TIMEOUT)
    assert view["status"] == "failed", view
    assert view["error"]["step"] == "deploy_container"
    assert "Docker engine" in view["error"]["message"]
    assert leftovers(live_stack, payload["departmentId"]) == {}


def test_a_missing_agent_image_fails_the_step_and_rolls_back(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    with worker_with(live_stack, AGENT_IMAGE="provisioning-orchestrator/agent:absent"):
        payload = department_payload()
        view = wait_for_job(submit(client, admin_headers, payload), timeout=JOB_TIMEOUT)
    assert view["status"] == "failed", view
    assert view["error"]["step"] == "deploy_container"
    assert "is missing from the engine" in view["error"]["message"]
    assert step_view(view, "deploy_container")["attempts"] == 1  # not worth retrying
    assert leftovers(live_stack, payload["departmentId"]) == {}


def test_a_killed_container_comes_back_by_its_restart_policy(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    assert wait_for_job(submit(client, admin_headers, payload))["status"] == "completed"
    container = department_container(live_stack, department_id)
    # A crash, not `docker kill` (which the engine counts as a manual stop).
    os.kill(container.attrs["State"]["Pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        container.reload()
        if container.attrs["RestartCount"] >= 1 and container.status == "running":
            health = client.get(f"/api/departments/{department_id}/health", headers=admin_headers)
            if health.get_json()["healthy"]:
                break
        time.sleep(0.5)
    else:
        raise AssertionError(f"container not back: {container.status}, {container.attrs['State']}")
    deprovision_cleanly(live_stack, client, admin_headers, department_id)
