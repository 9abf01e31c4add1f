"""Department container, runtime ``local``: the reference agent as a detached process.

Each department gets one ``department_agent.serve`` process serving the agent on a loopback
port, in its own session so it outlives the Celery worker that started it,
running as the department's own OS user when the orchestrator is root
(``agent_users``). Credentials reach the agent only through its environment
(``/proc/<pid>/environ`` is readable by its owner and root alone, while command
lines are world-readable). Process control is in ``agent_process``, resource
planning in ``agent_resources``, the orchestrator's files in ``agent_files``.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from app.providers import agent_handover, agent_users
from app.providers.agent_files import AgentFiles
from app.providers.agent_http import answers, probe_health
from app.providers.agent_inputs import (
    AgentInputs,
    AgentTarget,
    checked_id,
    gather_inputs,
)
from app.providers.agent_process import (
    find_agent_pids,
    has_exited,
    is_running,
    pidfd_of,
    stop_agent,
    stop_all_agents,
    verified_agent_environ,
)
from app.providers.base import (
    CheckResult,
    DepartmentContext,
    ProviderError,
    Stopwatch,
    TransientProviderError,
)

logger = logging.getLogger(__name__)

PROJECT_ROOT = agent_users.PROJECT_ROOT
LAUNCHER_TIMEOUT_SECONDS = 30.0


class LocalContainerProvider:
    """Runs ``department_agent`` as a detached local process."""

    name = "container"

    def __init__(
        self,
        *,
        run_dir: Path,
        database_host: str,
        database_port: int,
        database_name: str,
        oauth_token_url: str,
        bind_host: str = "127.0.0.1",
        start_timeout: float = 20.0,
        home_root: Path | None = None,
        python_executable: str | None = None,
    ) -> None:
        self._files = AgentFiles(Path(run_dir) / "agents")
        self._target = AgentTarget(database_host, database_port, database_name, oauth_token_url)
        self._bind_host = bind_host
        self._start_timeout = start_timeout
        if home_root is None:
            isolated = agent_users.isolation_available()
            home_root = agent_users.DEFAULT_HOME_ROOT if isolated else Path(run_dir) / "homes"
        self._home_root = home_root
        self._python = python_executable

    # Provider interface

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        department_id = checked_id(context.department_id)
        inputs = gather_inputs(context, self._target)
        with self._files.locked(department_id):
            outputs = self._outputs_if_current(department_id, inputs)
            if outputs is not None:
                return outputs
            self._stop_all(department_id)
            return self._start(department_id, inputs)

    def delete(self, context: DepartmentContext) -> None:
        department_id = checked_id(context.department_id)
        with self._files.locked(department_id):
            self._stop_all(department_id)
            self._files.remove(department_id)
            agent_users.remove_identity(department_id, self._home_root)

    def check(self, context: DepartmentContext) -> CheckResult:
        watch = Stopwatch()
        try:
            department_id = checked_id(context.department_id)
        except ProviderError as exc:
            return CheckResult("container_process", False, watch.elapsed_ms, str(exc))
        record = self._files.read_record(department_id)
        pid, port = record.get("pid"), record.get("port")
        if not isinstance(pid, int) or not isinstance(port, int):
            strays = find_agent_pids(department_id)
            detail = f"no usable pidfile for agent; unrecorded agent pids: {strays or 'none'}"
            return CheckResult("container_process", False, watch.elapsed_ms, detail)
        if verified_agent_environ(pid, department_id) is None:
            detail = f"pid {pid} is not running as this department's agent"
            return CheckResult("container_process", False, watch.elapsed_ms, detail, {"pid": pid})
        healthy, detail, body = probe_health(f"http://{self._bind_host}:{port}")
        data = {"pid": pid, "port": port, "health": body}
        return CheckResult("container_process", healthy, watch.elapsed_ms, detail, data)

    # Idempotence

    def _outputs_if_current(self, department_id: str, inputs: AgentInputs) -> dict[str, Any] | None:
        """The recorded outputs if the running agent matches what is wanted now.

        A changed password, config or limit means the agent must be restarted,
        so the comparison is against the live process's environment.
        """
        record = self._files.read_record(department_id)
        pid, outputs = record.get("pid"), record.get("outputs")
        if not isinstance(pid, int) or not isinstance(outputs, dict):
            return None
        environ = verified_agent_environ(pid, department_id)
        if environ is None:
            return None
        if agent_handover.agent_settings(environ) != inputs.agent_variables():
            logger.info("agent %s runs with outdated settings; restarting", department_id)
            return None
        if outputs != {**outputs, **inputs.resource_outputs()}:
            logger.info("agent %s runs with outdated limits; restarting", department_id)
            return None
        if not answers(f"http://{self._bind_host}:{outputs.get('port')}", department_id):
            logger.info("agent %s (pid %s) does not answer; restarting", department_id, pid)
            return None
        return outputs

    def hand_over(self, context: DepartmentContext, passwords: list[str], secret: str) -> None:
        with self._files.locked(checked_id(context.department_id)):
            identity = agent_users.ensure_identity(context.department_id, self._home_root)
            agent_handover.write_credentials(identity, passwords, secret)

    # Start and stop

    def _start(self, department_id: str, inputs: AgentInputs) -> dict[str, Any]:
        identity = agent_users.ensure_identity(department_id, self._home_root)
        agent_handover.credentials_file(identity.home).unlink(missing_ok=True)  # a fresh start
        pid, port, log_offset = self._launch(department_id, inputs, identity)
        outputs = {
            "runtime": "local",
            "pid": pid,
            "port": port,
            "upstream": f"{self._bind_host}:{port}",
            "url": f"http://{self._bind_host}:{port}",
            **identity.as_outputs(),
            **inputs.resource_outputs(),
        }
        # Recorded before waiting so a crash of this worker leaves a findable agent.
        self._files.write_record(department_id, {"pid": pid, "port": port, "outputs": outputs})
        try:
            self._wait_until_serving(department_id, pid, port, log_offset, inputs)
        except ProviderError:
            # A half-started agent (e.g. one that never answers) must not
            # linger, nor a pidfile that names it.
            self._stop_all(department_id)
            self._files.pidfile(department_id).unlink(missing_ok=True)
            raise
        return outputs

    def _launch(
        self, department_id: str, inputs: AgentInputs, identity: agent_users.AgentIdentity
    ) -> tuple[int, int, int]:
        """Start the agent; returns (pid, port, offset of this run in the log).

        The listening socket is bound here and handed to the agent, so the port
        reported is the port served, with no window for another process to take it.
        """
        home = agent_users.install_code(identity)
        listener = socket.create_server((self._bind_host, 0))
        port = listener.getsockname()[1]
        log_path = self._files.logfile(department_id)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        log_offset = os.fstat(log_fd).st_size
        os.write(log_fd, f"--- starting agent {department_id} at {time.ctime()}\n".encode())
        # The uid switch happens in the child between fork and exec (no preexec_fn).
        own = {"user": identity.uid, "group": identity.gid, "extra_groups": []}
        account: dict[str, Any] = own if identity.isolated else {}
        try:
            launcher = subprocess.Popen(
                _command(self._python or agent_users.agent_python(), listener.fileno(), inputs),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_fd,
                env=_process_environment(inputs, home),
                cwd=home,
                start_new_session=True,
                pass_fds=(listener.fileno(),),
                **account,
            )
            stdout, _ = launcher.communicate(timeout=LAUNCHER_TIMEOUT_SECONDS)
        finally:
            listener.close()
            os.close(log_fd)
        if launcher.returncode != 0 or not stdout.strip().isdigit():
            tail = self._files.log_tail(department_id, log_offset, inputs.redact)
            raise ProviderError(f"agent launcher for {department_id} failed:\n{tail}")
        return int(stdout), port, log_offset

    def _wait_until_serving(
        self, department_id: str, pid: int, port: int, log_offset: int, inputs: AgentInputs
    ) -> None:
        deadline = time.monotonic() + self._start_timeout
        with pidfd_of(pid) as pidfd:
            while time.monotonic() < deadline:
                if pidfd is None or has_exited(pidfd, 0):
                    tail = self._files.log_tail(department_id, log_offset, inputs.redact)
                    raise ProviderError(f"agent {department_id} exited during start:\n{tail}")
                if answers(f"http://{self._bind_host}:{port}", department_id):
                    return
                time.sleep(0.1)
        tail = self._files.log_tail(department_id, log_offset, inputs.redact)
        raise TransientProviderError(
            f"agent {department_id} did not answer within {self._start_timeout}s:\n{tail}"
        )

    def _stop_all(self, department_id: str) -> None:
        """Stop the recorded agent if it really is one, then any unrecorded ones."""
        pid = self._files.read_record(department_id).get("pid")
        if isinstance(pid, int) and not stop_agent(pid, department_id) and is_running(pid):
            logger.warning(
                "pidfile of %s names pid %s, which is not its agent; not signalling it",
                department_id,
                pid,
            )
        for stray in find_agent_pids(department_id):
            logger.warning("stopping unrecorded agent of %s, pid %s", department_id, stray)
            stop_agent(stray, department_id)


def _process_environment(inputs: AgentInputs, home: Path) -> dict[str, str]:
    return {
        "PATH": os.defpath,
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(home),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        # Fewer malloc arenas keep address space (RLIMIT_AS) use predictable.
        "MALLOC_ARENA_MAX": "2",
        # If setproctitle is ever installed it must not overwrite the
        # environ block that identifies this process.
        "SPT_NOENV": "1",
        agent_handover.CREDENTIALS_VARIABLE: str(agent_handover.credentials_file(home)),
        **inputs.environment,
    }


def _command(python: str, listen_fd: int, inputs: AgentInputs) -> list[str]:
    cpus = inputs.cpu.cpus
    return [
        python,
        "-m",
        "department_agent.launch",
        f"--memory-bytes={inputs.memory.limit_bytes or 0}",
        f"--nice={inputs.cpu.nice}",
        f"--cpus={','.join(map(str, cpus)) if cpus else ''}",
        "--",
        f"--fd={listen_fd}",
    ]


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] != ["stop-all"] or len(sys.argv) != 3:
        raise SystemExit("usage: python -m app.providers.container_local stop-all RUN_DIR")
    for name in stop_all_agents(Path(sys.argv[2])):
        print(f"stopped agent of {name}")
