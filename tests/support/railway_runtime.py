"""The stand-in's runtime: each successful deployment really runs, as a local process.

Every image runs the reference department agent (the stand-in has no registry), started
the way ``department_agent.launch`` starts it for the local runtime, with the deployment's
variables plus the ones Railway injects (``PORT``, ``RAILWAY_SERVICE_ID``,
``RAILWAY_DEPLOYMENT_ID``, ...), its memory limit as ``RLIMIT_AS``, and the image it was
deployed from in ``STANDIN_IMAGE`` so a test can see which image a process runs.

Each service's domain is ``127.0.0.1:<port>``: a TCP proxy standing for Railway's edge,
pointed at the live deployment's process. A sleeping service's process is stopped; a
connection to its domain wakes it (Railway's serverless behaviour).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.railway_model import Deployment, Instance, Service
from tests.support.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class AgentProcess:
    pid: int
    port: int
    image: str | None
    started: float = field(default_factory=time.monotonic)

    def ready(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
            return True
        return False

    def alive(self) -> bool:
        """Running; an exited agent may linger as a zombie where pid 1 does not reap."""
        return Path(f"/proc/{self.pid}").exists() and not _is_zombie(self.pid)

    def failed(self) -> bool:
        return not self.alive() or (
            time.monotonic() - self.started > START_TIMEOUT and not self.ready()
        )

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while self.alive():
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                break
            time.sleep(0.05)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


class LocalRuntime:
    def __init__(self, log_dir: Path, project_id: str, environment_id: str) -> None:
        self._log_dir = Path(log_dir)
        self._log_dir.mkdir(parents=True, exist_ok=True)
        self._ids = {"RAILWAY_PROJECT_ID": project_id, "RAILWAY_ENVIRONMENT_ID": environment_id}
        self._proxies: dict[str, TcpProxy] = {}
        self.waker: Callable[[str], None] = lambda service_id: None

    def domain_for(self, service: Service) -> str:
        proxy = TcpProxy("127.0.0.1", 9)  # the discard port: refused until a deployment runs
        proxy.before_connect = lambda: self.waker(service.id)
        self._proxies[service.id] = proxy.start()
        return f"127.0.0.1:{proxy.port}"

    def launch(self, service: Service, deployment: Deployment) -> Instance:
        port = _free_port()
        memory = int(deployment.limits.get("memoryGB", 8) * 1024**3)
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(ROOT),
            "MALLOC_ARENA_MAX": "2",
            **deployment.variables,
            **self._ids,
            "PORT": str(port),
            # Railway routes to any interface of the service's own network; here that
            # would be this machine's, so the stand-in keeps the agent on loopback.
            "HOST": "127.0.0.1",
            "RAILWAY_SERVICE_ID": service.id,
            "RAILWAY_SERVICE_NAME": service.name,
            "RAILWAY_DEPLOYMENT_ID": deployment.id,
            "STANDIN_IMAGE": deployment.image or "",
            "STANDIN_VCPUS": str(deployment.limits.get("vCPUs", 8)),
        }
        log = (self._log_dir / f"{service.name}.log").open("ab")
        launched = subprocess.run(
            [
                # No listen option: the agent takes PORT, as it would run on Railway.
                sys.executable, "-m", "department_agent.launch", "--memory-bytes", str(memory),
            ],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, check=True, timeout=30,
        )  # fmt: skip
        log.close()
        return AgentProcess(int(launched.stdout.strip()), port, deployment.image)

    def stop(self, instance: Instance) -> None:
        assert isinstance(instance, AgentProcess)
        instance.stop()

    def route(self, service: Service, instance: Instance | None) -> None:
        proxy = self._proxies.get(service.id)
        if proxy is not None and isinstance(instance, AgentProcess):
            proxy.target = ("127.0.0.1", instance.port)

    def forget(self, service: Service) -> None:
        proxy = self._proxies.pop(service.id, None)
        if proxy is not None:
            proxy.stop()
