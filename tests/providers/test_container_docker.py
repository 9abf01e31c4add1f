"""The `docker` runtime against a real engine: one hardened container per department."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

import docker
from app.providers import container_docker
from app.providers.base import ProviderError, TransientProviderError
from app.providers.container_docker import DockerContainerProvider
from app.providers.docker_agent import free_port
from tests.providers.conftest import Department, _config, bare_context
from tests.support.docker_engine import Engine, ensure_engine, stop_engine_if_ours
from tests.support.stack import wait_http

pytestmark = pytest.mark.slow
MiB = 1024**2


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    try:
        found = ensure_engine()
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        pytest.skip(f"no Docker engine here: {exc}")
    yield found
    stop_engine_if_ours(found)


@pytest.fixture
def docker_department(department: Department, engine: Engine) -> Iterator[Department]:
    department.provider = DockerContainerProvider(  # type: ignore[assignment]
        docker_host=engine.host, image=engine.image, **_target(department)
    )
    # The shared server may refuse CONNECT on its maintenance database to PUBLIC.
    department.tenant._run(grant_connect(department))
    try:
        yield department
    finally:
        department.provider.delete(bare_context(department.department_id))
        department.tenant._run(grant_connect(department, revoke=True))


def _target(department: Department) -> dict[str, Any]:
    args = dict(department.provider_args)
    args.pop("start_timeout", None)
    return args


def grant_connect(department: Department, revoke: bool = False) -> Any:
    from psycopg2 import sql

    database = department.provider_args["database_name"]
    template = (
        "REVOKE CONNECT ON DATABASE {} FROM {}" if revoke else "GRANT CONNECT ON DATABASE {} TO {}"
    )
    return sql.SQL(template).format(
        sql.Identifier(database), sql.Identifier(department.tenant.role)
    )


def client(engine: Engine) -> Any:
    return docker.DockerClient(base_url=engine.host)  # type: ignore[attr-defined]


def labelled(engine: Engine, department_id: str) -> list[Any]:
    return client(engine).containers.list(
        all=True, filters={"label": f"department-id={department_id}"}
    )


def test_create_runs_one_hardened_labelled_container(
    docker_department: Department, engine: Engine
) -> None:
    d = docker_department
    outputs = d.provider.create(d.context)
    assert outputs["runtime"] == "docker" and outputs["container"] == f"dept-{d.department_id}"
    [container] = labelled(engine, d.department_id)
    attrs = container.attrs
    assert container.labels["managed-by"] == "provisioning-orchestrator"
    assert container.labels["config-version"] == outputs["configVersion"]
    host = attrs["HostConfig"]
    assert attrs["Config"]["User"] == "10001:10001"
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert host["Memory"] == 512 * MiB == host["MemorySwap"]
    assert host["NanoCpus"] == 500_000_000
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    # No exec'd probe per container every few seconds (an interpreter each time).
    assert attrs["Config"]["Healthcheck"]["Test"] == ["NONE"]
    # The cgroup limit is real, seen from inside.
    limit = container.exec_run(["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"])
    assert int(limit.output) == 512 * MiB
    # One process serves (department_agent/serve.py): no supervisor beside it.
    assert len(container.top()["Processes"]) == 1, container.top()
    # No secret anywhere docker inspect shows.
    dumped = json.dumps(attrs)
    for secret in d.secret_values():
        assert secret not in dumped
    settings = container.exec_run(["stat", "-c", "%a %u", "/run/agent/settings.json"])
    assert settings.output.decode().split() == ["400", "10001"]
    index = requests.get(outputs["url"] + "/", timeout=10).json()
    assert index["departmentId"] == d.department_id
    health = requests.get(outputs["url"] + "/health", timeout=20)
    assert health.status_code == 200, health.text
    assert d.provider.check(d.context).healthy


def test_create_again_keeps_the_container_and_update_recreates_it_with_new_limits(
    docker_department: Department, engine: Engine
) -> None:
    d = docker_department
    first = d.provider.create(d.context)
    again = d.provider.create(d.context)
    assert again["containerId"] == first["containerId"]
    d.context.config = _config(memory="256Mi", cpu="1")
    updated = d.provider.create(d.context)
    assert updated["containerId"] != first["containerId"]
    [container] = labelled(engine, d.department_id)
    assert container.attrs["HostConfig"]["Memory"] == 256 * MiB
    assert container.attrs["HostConfig"]["NanoCpus"] == 1_000_000_000


def test_delete_by_id_alone_removes_container_and_volume_and_can_repeat(
    docker_department: Department, engine: Engine
) -> None:
    d = docker_department
    d.provider.create(d.context)
    d.provider.delete(bare_context(d.department_id))
    assert labelled(engine, d.department_id) == []
    volumes = client(engine).volumes.list(filters={"name": f"dept-{d.department_id}-settings"})
    assert volumes == []
    d.provider.delete(bare_context(d.department_id))


def test_check_sees_a_stopped_or_removed_container_and_create_repairs(
    docker_department: Department, engine: Engine
) -> None:
    d = docker_department
    d.provider.create(d.context)
    [container] = labelled(engine, d.department_id)
    container.stop(timeout=2)
    container.reload()
    # Stopped by its SIGTERM handler, not killed when the timeout ran out (137).
    assert container.attrs["State"]["ExitCode"] == 0
    stopped = d.provider.check(d.context)
    assert not stopped.healthy and "exited" in stopped.detail
    d.provider.create(d.context)
    assert d.provider.check(d.context).healthy
    container = labelled(engine, d.department_id)[0]
    container.remove(force=True)
    gone = d.provider.check(d.context)
    assert not gone.healthy and "no container" in gone.detail
    d.provider.create(d.context)
    assert d.provider.check(d.context).healthy


def test_allocating_past_the_memory_limit_is_killed_by_the_kernel_and_seen(
    docker_department: Department, engine: Engine
) -> None:
    d = docker_department
    d.context.config = _config(memory="128Mi")
    d.provider.create(d.context)
    [container] = labelled(engine, d.department_id)
    # Run as the agent's user inside the agent's container (same cgroup).
    hog = container.exec_run(
        ["python3", "-c", "b = bytearray(400 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"],
        user="10001",
    )
    assert hog.exit_code == 137, hog.output  # SIGKILL from the OOM killer
    seen = d.provider.check(d.context)
    assert not seen.healthy and "OOM" in seen.detail and seen.data["oomKills"] >= 1
    d.provider.create(d.context)  # repair: a fresh container, fresh cgroup
    assert d.provider.check(d.context).healthy


def test_a_missing_image_fails_the_step_clearly(
    docker_department: Department, engine: Engine
) -> None:
    d = docker_department
    provider = DockerContainerProvider(
        docker_host=engine.host, image="provisioning-orchestrator/agent:absent", **_target(d)
    )
    with pytest.raises(ProviderError, match="missing"):
        provider.create(d.context)
    assert labelled(engine, d.department_id) == []


def test_an_engine_that_does_not_answer_is_a_transient_failure(
    docker_department: Department, tmp_path: Any
) -> None:
    d = docker_department
    provider = DockerContainerProvider(
        docker_host=f"unix://{tmp_path}/no.sock", image="x", **_target(d)
    )
    with pytest.raises(TransientProviderError):
        provider.create(d.context)
    assert not provider.check(d.context).healthy


def test_the_engine_is_asked_its_api_version_once_per_process(
    docker_department: Department, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16: every client used to start with GET /version, a round trip to
    the engine per create, check and delete."""
    from docker.api.client import APIClient

    asked: list[str] = []
    original = APIClient._retrieve_server_version

    def counted(self: APIClient) -> str:
        asked.append(self.base_url)
        return str(original(self))

    monkeypatch.setattr(APIClient, "_retrieve_server_version", counted)
    monkeypatch.setattr("app.providers.container_docker._API_VERSIONS", {})
    d = docker_department
    for _ in range(3):
        d.provider.check(d.context)
    assert len(asked) == 1, asked


def test_the_image_run_as_a_platform_runs_it_listens_on_its_port(engine: Engine) -> None:
    """Railway runs the image's own command and injects PORT: with no option the
    agent listens there (HOST narrows it to loopback for this test machine)."""
    port = free_port("127.0.0.1")
    settings = {
        "AGENT_DEPARTMENT_ID": "image-default",
        "AGENT_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "AGENT_OAUTH_TOKEN_URL": "http://127.0.0.1:1/token",
        "AGENT_OAUTH_CLIENT_ID": "client",
        "AGENT_OAUTH_CLIENT_SECRET": "secret",
    }
    container = client(engine).containers.run(
        engine.image,
        detach=True,
        network_mode="host",
        environment={**settings, "PORT": str(port), "HOST": "127.0.0.1"},
        read_only=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/", timeout=20)
        answer = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert answer.json()["departmentId"] == "image-default"
        assert container.attrs["Config"]["Cmd"] is None, "the image keeps no default options"
    finally:
        container.remove(force=True)


def test_a_port_taken_under_the_agent_is_retried_not_waited_out(
    docker_department: Department, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The port is chosen before the agent binds it: if another process takes it
    in between, the agent exits and its restart policy starts it again and again.
    Before, the step waited on that loop until its timeout, then rolled back."""
    d = docker_department
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        monkeypatch.setattr(container_docker, "free_port", lambda host: port)
        started = time.monotonic()
        with pytest.raises(TransientProviderError, match="retrying on another port"):
            d.provider.create(d.context)
        assert time.monotonic() - started < 15
    assert labelled(engine, d.department_id) == []
    monkeypatch.undo()
    d.provider.create(d.context)  # the step's retry: another port
    assert d.provider.check(d.context).healthy
