"""Department container, runtime ``local``: the reference agent as a detached process.

Each department gets one gunicorn serving ``department_agent`` on a loopback
port, in its own session so it outlives the Celery worker that started it.
Credentials reach the agent only through its environment (``/proc/<pid>/environ``
is readable by its owner and root alone, while command lines are world-readable).

Identity is never taken from the pidfile alone: before signalling anything the
process's environment must carry this department's id and our marker, and the
process is held through a pidfd so a recycled pid cannot be hit. The same
markers let ``delete`` find agents whose pidfile was lost.

Linux only (``/proc``, pidfds, ``sched_setaffinity``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from app.providers.agent_config import (
    AgentCredentials,
    AgentEndpoints,
    agent_variables,
    gather_credentials,
)
from app.providers.base import (
    CheckResult,
    DepartmentContext,
    ProviderError,
    Stopwatch,
    TransientProviderError,
)

logger = logging.getLogger(__name__)

MANAGED_BY = "provisioning-orchestrator"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Smaller memory requests are raised to this, and the outputs say so. Measured
# here: with a limit in place the gthread worker, having served /health (Flask,
# psycopg2 and requests loaded, both threads started), peaks at ~87 MiB of
# address space; the master stays ~30 MiB. At 64-72 MiB the worker fails to
# boot and gunicorn loops restarting it. Thread stacks and shared libraries
# count towards RLIMIT_AS, so this is address space, not resident memory.
MEMORY_FLOOR_BYTES = 128 * 1024**2
# Without cgroups a fractional CPU cannot be capped; a lower priority is the
# closest honest approximation, so 0.5 CPU -> nice 5, 0.1 CPU -> nice 9.
MAX_NICE = 10
DEPARTMENT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
STOP_TIMEOUT_SECONDS = 10.0
KILL_TIMEOUT_SECONDS = 5.0
LAUNCHER_TIMEOUT_SECONDS = 30.0
PROBE_TIMEOUT = (1.0, 2.0)
HEALTH_TIMEOUT = (3.05, 15.0)
LOG_TAIL_BYTES = 2000

_MEMORY_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]i?)?", re.IGNORECASE)
_MEMORY_UNITS = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
}


# --- resource hints -------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryPlan:
    requested_bytes: int | None
    limit_bytes: int | None

    def as_outputs(self) -> dict[str, Any]:
        return {
            "memoryLimitBytes": self.limit_bytes,
            "memoryRequestedBytes": self.requested_bytes,
            "memoryFloorBytes": MEMORY_FLOOR_BYTES,
            # RLIMIT_AS is per process: gunicorn's master and worker each get it.
            "memoryEnforcement": "RLIMIT_AS per process" if self.limit_bytes else "none",
        }


@dataclass(frozen=True)
class CpuPlan:
    requested: str | None
    cores: float | None
    nice: int
    cpus: tuple[int, ...] | None

    def as_output(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "cores": self.cores,
            "nice": self.nice,
            "affinity": list(self.cpus) if self.cpus is not None else "all",
            "enforcement": "nice + sched_setaffinity (whole CPUs only)",
        }


def parse_memory(value: Any) -> int | None:
    """Kubernetes-style quantity (``512Mi``, ``2Gi``, ``1G``, plain bytes) to bytes."""
    if value is None or value == "":
        return None
    match = _MEMORY_PATTERN.fullmatch(str(value).strip())
    if match is None or isinstance(value, bool):
        raise ProviderError(f"invalid memory quantity {value!r}")
    number, unit = match.groups()
    amount = int(float(number) * _MEMORY_UNITS[(unit or "").lower()])
    if amount <= 0:
        raise ProviderError(f"memory quantity must be positive, got {value!r}")
    return amount


def parse_cpu(value: Any) -> float | None:
    """Kubernetes-style CPU (``0.5``, ``1``, ``500m``) to cores."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    try:
        cores = int(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise ProviderError(f"invalid cpu quantity {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(cores) or cores <= 0:
        raise ProviderError(f"invalid cpu quantity {value!r}")
    return cores


def plan_memory(value: Any) -> MemoryPlan:
    requested = parse_memory(value)
    if requested is None:
        return MemoryPlan(None, None)
    return MemoryPlan(requested, max(requested, MEMORY_FLOOR_BYTES))


def plan_cpu(value: Any, department_id: str) -> CpuPlan:
    cores = parse_cpu(value)
    if cores is None:
        return CpuPlan(None, None, 0, None)
    nice = 0 if cores >= 1 else min(MAX_NICE, round((1 - cores) * MAX_NICE))
    allowed = sorted(os.sched_getaffinity(0))
    wanted = math.ceil(cores)
    if wanted >= len(allowed):
        return CpuPlan(str(value), cores, nice, None)
    # A stable per-department offset spreads agents instead of piling them on CPU 0.
    offset = zlib.crc32(department_id.encode()) % len(allowed)
    cpus = tuple(sorted(allowed[(offset + i) % len(allowed)] for i in range(wanted)))
    return CpuPlan(str(value), cores, nice, cpus)


# --- processes ------------------------------------------------------------------------


def read_environ(pid: int) -> dict[str, str]:
    """The environment a process was started with; empty if gone or unreadable."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    entries = (item.decode(errors="surrogateescape") for item in raw.split(b"\0"))
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def _is_running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The command name may contain spaces or parentheses; the state follows the last ')'.
    return stat[stat.rindex(")") + 2] not in "ZXx"


def verified_agent_environ(pid: int, department_id: str) -> dict[str, str] | None:
    """The environment of ``pid`` if it is a live agent of this department, else None."""
    if pid <= 1 or not _is_running(pid):
        return None
    environ = read_environ(pid)
    if environ.get("AGENT_MANAGED_BY") != MANAGED_BY:
        return None
    if environ.get("AGENT_DEPARTMENT_ID") != department_id:
        return None
    return environ


def find_agent_pids(department_id: str) -> list[int]:
    """Every live process of this department's agent, with or without a pidfile."""
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return sorted(pid for pid in pids if verified_agent_environ(pid, department_id))


@contextlib.contextmanager
def _pidfd(pid: int) -> Iterator[int | None]:
    """A handle on the process itself, immune to pid reuse; None if it is gone."""
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, ValueError):
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def _has_exited(pidfd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(int(timeout * 1000)))


def _send(pid: int, pidfd: int, signum: int) -> None:
    """Signal the whole group when ``pid`` leads it (gunicorn master), else just pid.

    Signals through the pidfd cannot reach a recycled pid. killpg has no pidfd
    form, so it is only used while the pidfd shows the leader still alive: its
    pid, and so the group id, cannot be reused before it exits and is reaped.
    Workers orphaned by a leader that exited in between are found by the scan.
    """
    try:
        if os.getpgid(pid) == pid and not _has_exited(pidfd, 0):
            os.killpg(pid, signum)
        else:
            signal.pidfd_send_signal(pidfd, signum)
    except ProcessLookupError:
        pass


def stop_agent(pid: int, department_id: str) -> bool:
    """SIGTERM then SIGKILL a verified agent; False if pid is not this department's agent."""
    if pid <= 1:
        return False
    with _pidfd(pid) as pidfd:
        # Verified after the pidfd is taken, so what was verified is what gets signalled.
        if pidfd is None or verified_agent_environ(pid, department_id) is None:
            return False
        for signum, timeout in (
            (signal.SIGTERM, STOP_TIMEOUT_SECONDS),
            (signal.SIGKILL, KILL_TIMEOUT_SECONDS),
        ):
            _send(pid, pidfd, signum)
            if _has_exited(pidfd, timeout):
                return True
    raise TransientProviderError(f"agent pid {pid} of {department_id} survived SIGKILL")


# --- the provider ---------------------------------------------------------------------


@dataclass(frozen=True)
class AgentInputs:
    """What the agent needs, gathered and validated before anything is started."""

    environment: dict[str, str]
    secrets: tuple[str, ...]
    memory: MemoryPlan
    cpu: CpuPlan

    def agent_variables(self) -> dict[str, str]:
        return {k: v for k, v in self.environment.items() if k.startswith("AGENT_")}

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class LocalContainerProvider:
    """Runs ``department_agent`` under gunicorn as a detached local process."""

    name = "container"

    def __init__(
        self,
        *,
        run_dir: Path,
        database_host: str,
        database_port: int,
        database_name: str,
        oauth_token_url: str,
        python_executable: str = sys.executable,
        bind_host: str = "127.0.0.1",
        start_timeout: float = 20.0,
    ) -> None:
        self._agents_dir = Path(run_dir) / "agents"
        self._endpoints = AgentEndpoints(
            database_host, database_port, database_name, oauth_token_url
        )
        self._python = python_executable
        self._bind_host = bind_host
        self._start_timeout = start_timeout

    # Provider interface

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        department_id = _checked_id(context.department_id)
        inputs = self._gather_inputs(context)
        with self._locked(department_id):
            outputs = self._outputs_if_current(department_id, inputs)
            if outputs is not None:
                return outputs
            self._stop_all(department_id)
            return self._start(department_id, inputs)

    def delete(self, context: DepartmentContext) -> None:
        department_id = _checked_id(context.department_id)
        with self._locked(department_id):
            self._stop_all(department_id)
            self._pidfile(department_id).unlink(missing_ok=True)
            self._logfile(department_id).unlink(missing_ok=True)

    def check(self, context: DepartmentContext) -> CheckResult:
        watch = Stopwatch()
        try:
            department_id = _checked_id(context.department_id)
        except ProviderError as exc:
            return CheckResult("container_process", False, watch.elapsed_ms, str(exc))
        record = self._read_record(department_id)
        pid, port = record.get("pid"), record.get("port")
        if not isinstance(pid, int) or not isinstance(port, int):
            strays = find_agent_pids(department_id)
            detail = f"no usable pidfile for agent; unrecorded agent pids: {strays or 'none'}"
            return CheckResult("container_process", False, watch.elapsed_ms, detail)
        if verified_agent_environ(pid, department_id) is None:
            detail = f"pid {pid} is not running as this department's agent"
            return CheckResult("container_process", False, watch.elapsed_ms, detail, {"pid": pid})
        healthy, detail, body = self._probe_health(port)
        data = {"pid": pid, "port": port, "health": body}
        return CheckResult("container_process", healthy, watch.elapsed_ms, detail, data)

    # Inputs

    def _gather_inputs(self, context: DepartmentContext) -> AgentInputs:
        credentials = gather_credentials(context, "start agent")
        resources = context.config.get("resources") or {}
        return AgentInputs(
            environment=self._environment(context, credentials),
            secrets=credentials.secrets(),
            memory=plan_memory(resources.get("memory")),
            cpu=plan_cpu(resources.get("cpu"), context.department_id),
        )

    def _environment(
        self, context: DepartmentContext, credentials: AgentCredentials
    ) -> dict[str, str]:
        """A minimal environment: the orchestrator's own variables (its database
        URL, encryption keys) must not leak into a tenant's process."""
        return {
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(PROJECT_ROOT),
            "PYTHONUNBUFFERED": "1",
            # Fewer malloc arenas keep address space (RLIMIT_AS) use predictable.
            "MALLOC_ARENA_MAX": "2",
            # If setproctitle is ever installed it must not overwrite the
            # environ block that identifies this process.
            "SPT_NOENV": "1",
            "AGENT_MANAGED_BY": MANAGED_BY,
            **agent_variables(context, credentials, self._endpoints),
        }

    # Idempotence

    def _outputs_if_current(self, department_id: str, inputs: AgentInputs) -> dict[str, Any] | None:
        """The recorded outputs if the running agent matches what is wanted now.

        A changed password, config or limit means the agent must be restarted,
        so the comparison is against the live process's environment.
        """
        record = self._read_record(department_id)
        pid, outputs = record.get("pid"), record.get("outputs")
        if not isinstance(pid, int) or not isinstance(outputs, dict):
            return None
        environ = verified_agent_environ(pid, department_id)
        if environ is None:
            return None
        wanted = inputs.agent_variables()
        if {k: v for k, v in environ.items() if k.startswith("AGENT_")} != wanted:
            logger.info("agent %s runs with outdated settings; restarting", department_id)
            return None
        if outputs != {**outputs, **self._resource_outputs(inputs)}:
            logger.info("agent %s runs with outdated limits; restarting", department_id)
            return None
        if not self._answers(outputs.get("port"), department_id):
            logger.info("agent %s (pid %s) does not answer; restarting", department_id, pid)
            return None
        return outputs

    def _answers(self, port: Any, department_id: str) -> bool:
        try:
            response = requests.get(f"http://{self._bind_host}:{port}/", timeout=PROBE_TIMEOUT)
            return response.status_code == 200 and (
                response.json().get("departmentId") == department_id
            )
        except (requests.RequestException, ValueError, AttributeError):
            return False

    # Start and stop

    def _start(self, department_id: str, inputs: AgentInputs) -> dict[str, Any]:
        self._agents_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        pid, port, log_offset = self._launch(department_id, inputs)
        outputs = {
            "runtime": "local",
            "pid": pid,
            "port": port,
            "upstream": f"{self._bind_host}:{port}",
            "url": f"http://{self._bind_host}:{port}",
            **self._resource_outputs(inputs),
        }
        # Recorded before waiting so a crash of this worker leaves a findable agent.
        self._write_record(department_id, {"pid": pid, "port": port, "outputs": outputs})
        try:
            self._wait_until_serving(department_id, pid, port, log_offset, inputs)
        except ProviderError:
            # A half-started agent (e.g. gunicorn looping on a worker that cannot
            # boot) must not linger, nor a pidfile that names it.
            self._stop_all(department_id)
            self._pidfile(department_id).unlink(missing_ok=True)
            raise
        return outputs

    @staticmethod
    def _resource_outputs(inputs: AgentInputs) -> dict[str, Any]:
        return {**inputs.memory.as_outputs(), "cpu": inputs.cpu.as_output()}

    def _launch(self, department_id: str, inputs: AgentInputs) -> tuple[int, int, int]:
        """Start the agent; returns (pid, port, offset of this run in the log).

        The listening socket is bound here and handed to gunicorn, so the port
        reported is the port served, with no window for another process to take it.
        """
        listener = socket.create_server((self._bind_host, 0))
        port = listener.getsockname()[1]
        log_fd = os.open(
            self._logfile(department_id), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        log_offset = os.fstat(log_fd).st_size
        os.write(log_fd, f"--- starting agent {department_id} at {time.ctime()}\n".encode())
        try:
            launcher = subprocess.Popen(
                self._command(department_id, listener.fileno(), inputs),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_fd,
                env=inputs.environment,
                cwd=PROJECT_ROOT,
                start_new_session=True,
                pass_fds=(listener.fileno(),),
            )
            stdout, _ = launcher.communicate(timeout=LAUNCHER_TIMEOUT_SECONDS)
        finally:
            listener.close()
            os.close(log_fd)
        if launcher.returncode != 0 or not stdout.strip().isdigit():
            tail = self._log_tail(department_id, log_offset, inputs)
            raise ProviderError(f"agent launcher for {department_id} failed:\n{tail}")
        return int(stdout), port, log_offset

    def _command(self, department_id: str, listen_fd: int, inputs: AgentInputs) -> list[str]:
        cpus = inputs.cpu.cpus
        return [
            self._python,
            "-m",
            "department_agent.launch",
            f"--memory-bytes={inputs.memory.limit_bytes or 0}",
            f"--nice={inputs.cpu.nice}",
            f"--cpus={','.join(map(str, cpus)) if cpus else ''}",
            "--",
            f"--bind=fd://{listen_fd}",
            "--workers=1",
            "--worker-class=gthread",
            "--threads=2",
            "--graceful-timeout=5",
            "--timeout=30",
            f"--name=department-agent-{department_id}",
            "department_agent.app:create_app()",
        ]

    def _wait_until_serving(
        self, department_id: str, pid: int, port: int, log_offset: int, inputs: AgentInputs
    ) -> None:
        deadline = time.monotonic() + self._start_timeout
        with _pidfd(pid) as pidfd:
            while time.monotonic() < deadline:
                if pidfd is None or _has_exited(pidfd, 0):
                    tail = self._log_tail(department_id, log_offset, inputs)
                    raise ProviderError(f"agent {department_id} exited during start:\n{tail}")
                if self._answers(port, department_id):
                    return
                time.sleep(0.1)
        tail = self._log_tail(department_id, log_offset, inputs)
        raise TransientProviderError(
            f"agent {department_id} did not answer within {self._start_timeout}s:\n{tail}"
        )

    def _stop_all(self, department_id: str) -> None:
        """Stop the recorded agent if it really is one, then any unrecorded ones."""
        pid = self._read_record(department_id).get("pid")
        if isinstance(pid, int) and not stop_agent(pid, department_id) and _is_running(pid):
            logger.warning(
                "pidfile of %s names pid %s, which is not its agent; not signalling it",
                department_id,
                pid,
            )
        for stray in find_agent_pids(department_id):
            logger.warning("stopping unrecorded agent of %s, pid %s", department_id, stray)
            stop_agent(stray, department_id)

    def _probe_health(self, port: int) -> tuple[bool, str, dict[str, Any]]:
        try:
            response = requests.get(
                f"http://{self._bind_host}:{port}/health", timeout=HEALTH_TIMEOUT
            )
        except requests.RequestException as exc:
            return False, f"GET /health failed: {exc.__class__.__name__}: {exc}", {}
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code == 200:
            return True, "", body
        failing = (body.get("checks") or {}) if isinstance(body, dict) else {}
        reasons = [f"{name}: {c.get('detail')}" for name, c in failing.items() if not c.get("ok")]
        detail = f"/health answered {response.status_code}: " + ("; ".join(reasons) or "?")
        return False, detail, body if isinstance(body, dict) else {}

    # Files

    def _pidfile(self, department_id: str) -> Path:
        return self._agents_dir / f"{department_id}.pid"

    def _logfile(self, department_id: str) -> Path:
        return self._agents_dir / f"{department_id}.log"

    @contextlib.contextmanager
    def _locked(self, department_id: str) -> Iterator[None]:
        """Serialises create/delete of one department across worker processes."""
        self._agents_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._agents_dir / f"{department_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_record(self, department_id: str) -> dict[str, Any]:
        """The pidfile's record; a bare pid is accepted, garbage counts as absent."""
        try:
            text = self._pidfile(department_id).read_text()
        except OSError:
            return {}
        if text.strip().isdigit():
            return {"pid": int(text)}
        try:
            record = json.loads(text)
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def _write_record(self, department_id: str, record: Mapping[str, Any]) -> None:
        """Write-then-rename, so readers see the old record or the new one, never half."""
        fd, temporary = tempfile.mkstemp(dir=self._agents_dir, prefix=f".{department_id}.")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(record, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self._pidfile(department_id))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _log_tail(self, department_id: str, offset: int, inputs: AgentInputs) -> str:
        try:
            with self._logfile(department_id).open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                start = max(offset, size - LOG_TAIL_BYTES)
                handle.seek(start)
                text = handle.read().decode(errors="replace")
        except OSError as exc:
            return f"(log unreadable: {exc})"
        if start > offset:  # cut mid-line: drop the fragment
            text = text.partition("\n")[2]
        return inputs.redact(text)


def _checked_id(department_id: str) -> str:
    """The id becomes a file name and an environment match; refuse anything odd."""
    if not DEPARTMENT_ID_PATTERN.fullmatch(department_id or ""):
        raise ProviderError(f"invalid department id {department_id!r}")
    return department_id


def stop_all_agents(run_dir: Path) -> list[str]:
    """Stops every agent recorded under ``run_dir`` (used by `make down`)."""
    stopped = []
    for pidfile in sorted((run_dir / "agents").glob("*.pid")):
        department_id = pidfile.stem
        if not DEPARTMENT_ID_PATTERN.fullmatch(department_id):
            continue
        for pid in find_agent_pids(department_id):
            if stop_agent(pid, department_id):
                stopped.append(department_id)
    return stopped


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] != ["stop-all"] or len(sys.argv) != 3:
        raise SystemExit("usage: python -m app.providers.container_local stop-all RUN_DIR")
    for name in stop_all_agents(Path(sys.argv[2])):
        print(f"stopped agent of {name}")
