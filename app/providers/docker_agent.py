"""The department agent's container, as data: names, labels, spec, settings, state.

Pure helpers for ``container_docker``; nothing here talks to the engine except
``oom_kills`` and ``log_tail``, which read what a container object offers.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import time
from datetime import datetime
from typing import Any

from app.providers.agent_inputs import AgentInputs
from app.providers.agent_network import DOCKER_AGENT_UID
from app.providers.agent_process import MANAGED_BY
from app.providers.base import ProviderError, TransientProviderError

AGENT_UID = DOCKER_AGENT_UID  # the image's user (docker/agent/Dockerfile)
SETTINGS_DIR = "/run/agent"
SETTINGS_FILE = f"{SETTINGS_DIR}/settings.json"
# Written by a credential rotation into the same volume; the agent re-reads it.
CREDENTIALS_FILE = f"{SETTINGS_DIR}/credentials.json"
LABEL_MANAGED = "managed-by"
LABEL_DEPARTMENT = "department-id"
LABEL_VERSION = "config-version"
LABEL_PORT = "agent-port"
# Which orchestrator checkout (its RUN_DIR) made it: `make down` stops only its own.
LABEL_INSTANCE = "instance"
PIDS_LIMIT = 128
STOP_TIMEOUT_SECONDS = 5
LOG_TAIL_LINES = 30


def container_name(department_id: str) -> str:
    return f"dept-{department_id}"


def volume_name(department_id: str) -> str:
    return f"dept-{department_id}-settings"


def container_spec(
    department_id: str, inputs: AgentInputs, version: str, host: str, port: int, instance: str = ""
) -> dict[str, Any]:
    """Everything ``containers.create`` is given: limits and hardening."""
    memory = inputs.memory.limit_bytes
    cores = inputs.cpu.cores
    return {
        "name": container_name(department_id),
        "command": [f"--bind={host}:{port}"],
        "labels": {
            **labels_for(department_id),
            LABEL_VERSION: version,
            LABEL_PORT: str(port),
            LABEL_INSTANCE: instance,
        },
        "environment": {
            "AGENT_SETTINGS_FILE": SETTINGS_FILE,
            "AGENT_CREDENTIALS_FILE": CREDENTIALS_FILE,
        },
        "user": f"{AGENT_UID}:{AGENT_UID}",
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "network_mode": "host",
        "mem_limit": memory,
        "memswap_limit": memory,  # equal: no swap beyond the limit
        "nano_cpus": int(cores * 1e9) if cores else None,
        "pids_limit": PIDS_LIMIT,
        "restart_policy": {"Name": "unless-stopped"},
        # No Docker health check (NONE also drops any the image declares): each
        # probe is a runc exec starting an interpreter in the container, and at
        # 10 s intervals 230 agents ran the 2-core host at a load of 270 (the
        # burst of 300). The orchestrator probes each agent over HTTP itself
        # (its checks and the drift sweep), and Docker restarts only on exit.
        "healthcheck": {"test": ["NONE"]},
        "mounts": [_volume_mount(department_id)],
        "tmpfs": {"/tmp": "size=16m,mode=1777"},  # noqa: S108 - the container's own /tmp
        "detach": True,
    }


def labels_for(department_id: str) -> dict[str, str]:
    return {LABEL_MANAGED: MANAGED_BY, LABEL_DEPARTMENT: department_id}


def _volume_mount(department_id: str) -> Any:
    from docker.types import Mount

    return Mount(SETTINGS_DIR, volume_name(department_id), type="volume")


def settings_archive(inputs: AgentInputs) -> bytes:
    """settings.json (0400, the agent's uid) as the tar stream put_archive takes."""
    return _archive("settings.json", json.dumps(inputs.agent_variables()).encode())


def credentials_archive(database_passwords: list[str], oauth_secret: str) -> bytes:
    """credentials.json, what a rotation hands the running agent (credentials.py)."""
    payload = {"databasePasswords": database_passwords, "oauthClientSecret": oauth_secret}
    return _archive("credentials.json", json.dumps(payload).encode())


def _archive(name: str, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid = len(payload), 0o400, AGENT_UID, AGENT_UID
        info.mtime = int(time.time())
        archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


# department_agent/serve.py's exit code for a port it could not bind.
EXIT_PORT_TAKEN = 4


def free_port(host: str) -> int:
    # Host networking: the agent binds the port itself. A port another process
    # takes in between makes the agent exit with EXIT_PORT_TAKEN, and the step
    # retry on a new one (start_failure).
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def state_data(state: dict[str, Any]) -> dict[str, Any]:
    health = (state.get("Health") or {}).get("Status")
    return {
        "status": state.get("Status"),
        "oomKilled": bool(state.get("OOMKilled")),
        "exitCode": state.get("ExitCode"),
        "health": health,
    }


def exited_during_start(container: Any) -> bool:
    """Stopped, or already restarted by its policy (then its status may read
    "restarting" or even "running" again, on a loop that never serves)."""
    return container.status in ("exited", "dead") or bool(container.attrs.get("RestartCount"))


def start_failure(container: Any, tail: str) -> ProviderError:
    """A port taken under the agent is worth another try on another port; any other
    exit (bad settings, a broken image) would only repeat. A container caught
    running again after a restart has no exit code to tell: it gets the retry."""
    state = container.attrs.get("State", {})
    if state.get("ExitCode") in (EXIT_PORT_TAKEN, 0):
        return TransientProviderError(
            f"agent container {container.name} stopped during start (the port may have"
            f" been taken before it bound it); retrying on another port:\n{tail}"
        )
    return ProviderError(
        f"agent container {container.name} exited during start{why_stopped(state)}:\n{tail}"
    )


def why_stopped(state: dict[str, Any]) -> str:
    if state.get("OOMKilled"):
        return " (killed by the kernel: out of memory within its limit)"
    return f" (exit code {state.get('ExitCode')})" if state.get("ExitCode") else ""


def oom_kills(container: Any) -> int:
    """OOM kills in the container's memory cgroup since it started, from the
    engine's own ``oom`` events (works whether or not we share its /sys)."""
    started = (container.attrs.get("State") or {}).get("StartedAt") or ""
    try:
        since = int(datetime.fromisoformat(started[:26].rstrip("Z")).timestamp())
    except ValueError:
        return 0
    events = container.client.api.events(
        since=since,
        until=int(time.time()) + 1,
        filters={"container": container.id, "event": "oom"},
        decode=True,
    )
    return sum(1 for _ in events)


def log_tail(container: Any, inputs: AgentInputs) -> str:
    try:
        text = container.logs(tail=LOG_TAIL_LINES).decode(errors="replace")
    except Exception as exc:
        return f"(logs unavailable: {exc})"
    return inputs.redact(text)
