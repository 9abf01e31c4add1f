"""Department container, runtime ``docker``: one real container per department.

Driven through the Docker SDK at ``DOCKER_HOST``. The container is named
``dept-<id>`` and labelled (managed-by, department id, spec digest), so create,
delete and check find it by label and need no record. It runs the project's own
agent image (``agent_image``) as a non-root user with a read-only root
filesystem, every capability dropped, no-new-privileges, ``resources.memory``
and ``resources.cpu`` as cgroup limits (swap included in the memory limit), a
pids limit and a restart policy; no Docker health check (``docker_agent``
says why: the orchestrator's own checks probe the agent over HTTP).

Secrets never go into the container's environment, which ``docker inspect``
shows: the agent's settings are copied, mode 0400 and owned by the agent's
uid, into a per-department volume mounted at ``/run/agent`` before the container
starts. The volume is not a host path, so this also works when the orchestrator
itself runs in a container talking to the host's engine.

Network: the host network, each agent on its own loopback port, because the
engine runs with ``--bridge=none --iptables=false`` (no firewall changes on the
host) and the agent must reach the tenant database and the token endpoint on
loopback. Trade-off: agents share the host's network namespace, so network
isolation between them is by credentials, not by reachability (README), except
for Redis, which has none: ``agent_network`` has the kernel refuse it to agents.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import docker.errors
import requests

import docker
from app.providers.agent_http import ENGINE_LOOK_INTERVAL, answers, boot_poll_delays, probe_health
from app.providers.agent_inputs import AgentInputs, AgentTarget, checked_id, gather_inputs
from app.providers.agent_process import MANAGED_BY
from app.providers.base import (
    CheckResult,
    DepartmentContext,
    ProviderError,
    Stopwatch,
    TransientProviderError,
)
from app.providers.docker_agent import (
    LABEL_DEPARTMENT,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_PORT,
    LABEL_VERSION,
    SETTINGS_DIR,
    container_spec,
    credentials_archive,
    exited_during_start,
    free_port,
    labels_for,
    log_tail,
    oom_kills,
    settings_archive,
    start_failure,
    state_data,
    volume_name,
    why_stopped,
)
from app.providers.docker_create import create_named

logger = logging.getLogger(__name__)


# A stopped engine shows up as any of these; all are worth a retry.
ENGINE_ERRORS: tuple[type[Exception], ...] = (
    docker.errors.DockerException,
    requests.RequestException,
    ConnectionError,
)
CHECK_ERRORS: tuple[type[Exception], ...] = (ProviderError, *ENGINE_ERRORS)
# How long a create waits for an earlier attempt's container to free the name.
NAME_PATIENCE = 120.0
# Engine -> the API version it answered: asked once per process, not per client.
_API_VERSIONS: dict[str, str] = {}


class DockerContainerProvider:
    name = "container"

    def __init__(
        self,
        *,
        docker_host: str,
        image: str,
        database_host: str,
        database_port: int,
        database_name: str,
        oauth_token_url: str,
        bind_host: str = "127.0.0.1",
        start_timeout: float = 30.0,
        instance: str = "",
    ) -> None:
        self._docker_host = docker_host
        self._image = image
        self._target = AgentTarget(database_host, database_port, database_name, oauth_token_url)
        self._bind_host = bind_host
        self._start_timeout = start_timeout
        self._instance = instance

    def _client(self) -> Any:
        try:
            known = _API_VERSIONS.get(self._docker_host)  # None: the client asks the engine
            client = docker.DockerClient(  # type: ignore[attr-defined]
                base_url=self._docker_host, timeout=30, version=known
            )
            _API_VERSIONS[self._docker_host] = client.api.api_version
            return client
        except ENGINE_ERRORS as exc:
            raise TransientProviderError(f"Docker engine at {self._docker_host}: {exc}") from exc

    def _mine(self, client: Any, department_id: str) -> list[Any]:
        labels = [f"{LABEL_MANAGED}={MANAGED_BY}", f"{LABEL_DEPARTMENT}={department_id}"]
        return list(client.containers.list(all=True, filters={"label": labels}))

    # Provider interface

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        department_id = checked_id(context.department_id)
        inputs = gather_inputs(context, self._target)
        version = inputs.digest(self._image)
        try:
            client = self._client()
            for container in self._mine(client, department_id):
                if self._is_current(container, version, department_id):
                    return self._outputs(container, inputs)
            self._remove_all(client, department_id)
            return self._start(client, department_id, inputs, version)
        except ENGINE_ERRORS as exc:
            raise TransientProviderError(f"Docker engine: {exc}") from exc

    def delete(self, context: DepartmentContext) -> None:
        department_id = checked_id(context.department_id)
        try:
            self._remove_all(self._client(), department_id)
        except ENGINE_ERRORS as exc:
            raise TransientProviderError(f"Docker engine: {exc}") from exc

    def hand_over(self, context: DepartmentContext, passwords: list[str], secret: str) -> None:
        """New credentials into the running container's settings volume; the agent
        re-reads the file at its next request (no restart)."""
        department_id = checked_id(context.department_id)
        try:
            running = [
                c for c in self._mine(self._client(), department_id) if c.status == "running"
            ]
            if not running:
                raise ProviderError(f"no running agent container for {department_id}")
            for container in running:
                container.put_archive(SETTINGS_DIR, credentials_archive(passwords, secret))
        except ENGINE_ERRORS as exc:
            raise TransientProviderError(f"Docker engine: {exc}") from exc

    def check(self, context: DepartmentContext) -> CheckResult:
        watch = Stopwatch()
        try:
            department_id = checked_id(context.department_id)
            containers = self._mine(self._client(), department_id)
        except CHECK_ERRORS as exc:
            return CheckResult("container_process", False, watch.elapsed_ms, str(exc))
        if not containers:
            detail = f"no container labelled for {department_id}"
            return CheckResult("container_process", False, watch.elapsed_ms, detail)
        container = containers[0]
        state = container.attrs.get("State", {})
        data = {"container": container.name, "id": container.id[:12], **state_data(state)}
        if state.get("Status") != "running":
            detail = f"container {container.name} is {state.get('Status')}" + why_stopped(state)
            return CheckResult("container_process", False, watch.elapsed_ms, detail, data)
        oom = oom_kills(container)
        data["oomKills"] = oom
        if oom:
            detail = f"the kernel OOM-killed {oom} process(es) in {container.name} (memory limit)"
            return CheckResult("container_process", False, watch.elapsed_ms, detail, data)
        port = container.labels.get(LABEL_PORT)
        healthy, detail, body = probe_health(f"http://{self._bind_host}:{port}")
        data.update(port=int(port or 0), health=body)
        return CheckResult("container_process", healthy, watch.elapsed_ms, detail, data)

    # Helpers

    def _is_current(self, container: Any, version: str, department_id: str) -> bool:
        state = container.attrs.get("State", {})
        if container.labels.get(LABEL_VERSION) != version or state.get("Status") != "running":
            return False
        if oom_kills(container):
            return False  # under-provisioned or misbehaving: recreate it fresh
        return answers(
            f"http://{self._bind_host}:{container.labels.get(LABEL_PORT)}", department_id
        )

    def _outputs(self, container: Any, inputs: AgentInputs) -> dict[str, Any]:
        port = int(container.labels[LABEL_PORT])
        return {
            "runtime": "docker",
            "container": container.name,
            "containerId": container.id[:12],
            "image": self._image,
            "port": port,
            "upstream": f"{self._bind_host}:{port}",
            "url": f"http://{self._bind_host}:{port}",
            "configVersion": container.labels.get(LABEL_VERSION),
            **inputs.resource_outputs(),
            "memoryEnforcement": "cgroup memory limit (swap included)",
            "cpu": {**inputs.cpu.as_output(), "enforcement": "cgroup CPU quota (nano_cpus)"},
        }

    def _start(
        self, client: Any, department_id: str, inputs: AgentInputs, version: str
    ) -> dict[str, Any]:
        try:
            client.images.get(self._image)
        except docker.errors.ImageNotFound:
            raise ProviderError(
                f"agent image {self._image} is missing from the engine: build it with "
                "`python -m app.providers.agent_image` (make up does)"
            ) from None
        port = free_port(self._bind_host)
        client.volumes.create(volume_name(department_id), labels=labels_for(department_id))
        spec = container_spec(department_id, inputs, version, self._bind_host, port, self._instance)
        container = create_named(client, self._image, spec, NAME_PATIENCE)
        container.put_archive(SETTINGS_DIR, settings_archive(inputs))
        container.start()
        try:
            self._wait_until_serving(container, department_id, port, inputs)
        except ProviderError:
            self._remove_all(client, department_id)
            raise
        container.reload()
        return self._outputs(container, inputs)

    def _wait_until_serving(
        self, container: Any, department_id: str, port: int, inputs: AgentInputs
    ) -> None:
        deadline = time.monotonic() + self._start_timeout
        next_look = 0.0
        for delay in boot_poll_delays():
            if time.monotonic() >= deadline:
                break
            if time.monotonic() >= next_look:  # an agent that crashed shows in the engine
                container.reload()
                next_look = time.monotonic() + ENGINE_LOOK_INTERVAL
            if exited_during_start(container):
                raise start_failure(container, log_tail(container, inputs))
            if answers(f"http://{self._bind_host}:{port}", department_id):
                return
            time.sleep(delay)
        raise TransientProviderError(
            f"agent container {container.name} did not answer within {self._start_timeout}s:\n"
            f"{log_tail(container, inputs)}"
        )

    def _remove_all(self, client: Any, department_id: str) -> None:
        for container in self._mine(client, department_id):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
        with contextlib.suppress(docker.errors.NotFound):
            client.volumes.get(volume_name(department_id)).remove(force=True)


def running_container_pids(docker_host: str, department_id: str) -> list[int]:
    """Host pids of this department's running containers (probes, dry runs)."""
    client = docker.DockerClient(base_url=docker_host, timeout=10)  # type: ignore[attr-defined]
    labels = [f"{LABEL_MANAGED}={MANAGED_BY}", f"{LABEL_DEPARTMENT}={department_id}"]
    found = client.containers.list(filters={"label": labels})
    return [int(c.attrs["State"]["Pid"]) for c in found if c.attrs["State"].get("Pid")]


def stop_instance(docker_host: str, instance: str) -> list[str]:
    """Stops (keeps) the running containers one checkout made (`make down`);
    `make up` repairs them. Other checkouts' containers on a shared engine stay up."""
    client = docker.DockerClient(base_url=docker_host, timeout=30)  # type: ignore[attr-defined]
    labels = [f"{LABEL_MANAGED}={MANAGED_BY}", f"{LABEL_INSTANCE}={instance}"]
    stopped = []
    for container in client.containers.list(filters={"label": labels}):
        container.stop(timeout=5)
        stopped.append(container.name)
    return stopped


if __name__ == "__main__":
    import sys

    from app.docker_host import default_docker_host, engine_answers

    if sys.argv[1:2] != ["stop-instance"] or len(sys.argv) != 3:
        raise SystemExit("usage: python -m app.providers.container_docker stop-instance RUN_DIR")
    if engine_answers(default_docker_host()):
        for name in stop_instance(default_docker_host(), sys.argv[2]):
            print(f"stopped container {name}")
