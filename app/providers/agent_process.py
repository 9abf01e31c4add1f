"""Process control for local agents: find, verify and stop them safely.

Identity is never taken from a pidfile alone: before signalling anything the
process's environment must carry this department's id and our marker, and the
process is held through a pidfd so a recycled pid cannot be hit. The same
markers let ``delete`` find agents whose pidfile was lost.

Linux only (``/proc``, pidfds).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
from collections.abc import Iterator
from pathlib import Path

from app.domain.department import DEPARTMENT_ID
from app.providers.base import TransientProviderError

MANAGED_BY = "provisioning-orchestrator"
STOP_TIMEOUT_SECONDS = 10.0
KILL_TIMEOUT_SECONDS = 5.0


def read_environ(pid: int) -> dict[str, str]:
    """The environment a process was started with; empty if gone or unreadable."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    entries = (item.decode(errors="surrogateescape") for item in raw.split(b"\0"))
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def is_running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The command name may contain spaces or parentheses; the state follows the last ')'.
    return stat[stat.rindex(")") + 2] not in "ZXx"


def verified_agent_environ(pid: int, department_id: str) -> dict[str, str] | None:
    """The environment of ``pid`` if it is a live agent of this department, else None."""
    if pid <= 1 or not is_running(pid):
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
def pidfd_of(pid: int) -> Iterator[int | None]:
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


def has_exited(pidfd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(int(timeout * 1000)))


def _send(pid: int, pidfd: int, signum: int) -> None:
    """Signal the whole group when ``pid`` leads it (as a launched agent does), else just pid.

    Signals through the pidfd cannot reach a recycled pid. killpg has no pidfd
    form, so it is only used while the pidfd shows the leader still alive: its
    pid, and so the group id, cannot be reused before it exits and is reaped.
    Workers orphaned by a leader that exited in between are found by the scan.
    """
    try:
        if os.getpgid(pid) == pid and not has_exited(pidfd, 0):
            os.killpg(pid, signum)
        else:
            signal.pidfd_send_signal(pidfd, signum)
    except ProcessLookupError:
        pass


def stop_agent(pid: int, department_id: str) -> bool:
    """SIGTERM then SIGKILL a verified agent; False if pid is not this department's agent."""
    if pid <= 1:
        return False
    with pidfd_of(pid) as pidfd:
        # Verified after the pidfd is taken, so what was verified is what gets signalled.
        if pidfd is None or verified_agent_environ(pid, department_id) is None:
            return False
        for signum, timeout in (
            (signal.SIGTERM, STOP_TIMEOUT_SECONDS),
            (signal.SIGKILL, KILL_TIMEOUT_SECONDS),
        ):
            _send(pid, pidfd, signum)
            if has_exited(pidfd, timeout):
                return True
    raise TransientProviderError(f"agent pid {pid} of {department_id} survived SIGKILL")


def stop_all_agents(run_dir: Path, id_pattern: re.Pattern[str] = DEPARTMENT_ID) -> list[str]:
    """Stops every agent recorded under ``run_dir`` (used by `make down`)."""
    stopped = []
    for pidfile in sorted((run_dir / "agents").glob("*.pid")):
        department_id = pidfile.stem
        if not id_pattern.fullmatch(department_id):
            continue
        for pid in find_agent_pids(department_id):
            if stop_agent(pid, department_id):
                stopped.append(department_id)
    return stopped
