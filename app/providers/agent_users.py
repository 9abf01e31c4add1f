"""Each local agent's own OS identity: an unprivileged user and a private directory.

When the orchestrator runs as root, every department's agent runs as a system
user of its own (``po-<departmentId>``) with a 0700 directory under
``home_root`` holding a copy of the agent's code. So it cannot read the
project's ``.env``, the run directory, the orchestrator's environment or
another agent's ``/proc/<pid>/environ`` (the kernel allows that only to the
same uid or root). The user is created by the container step and removed by its
compensation, both idempotently; a user of that name not created by us is
never touched.

Not root: no users can be made, agents run as the orchestrator's own user and
are NOT isolated from it or from one another; the outputs and the log say so.

The interpreter must be executable by those users, which the orchestrator's
(often under a 0700 ``/root``) may not be: a small venv of the system
``python3`` with the agent's pinned requirements is built once for that.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.providers.agent_network import LOCAL_AGENT_UIDS
from app.providers.base import ProviderError

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AGENT_CODE = PROJECT_ROOT / "department_agent"
AGENT_REQUIREMENTS = PROJECT_ROOT / "docker" / "agent" / "requirements.txt"
DEFAULT_HOME_ROOT = Path("/var/lib/provisioning-orchestrator/agents")
VENV_ROOT = Path("/opt/provisioning-orchestrator")
USER_MARKER = "provisioning-orchestrator agent"
MAX_USER_NAME = 32
PASSWD_LOCK_RETRIES = 20
NOT_ISOLATED = (
    "none: the orchestrator is not root, so the agent runs as its user and can read "
    "its files and other agents' environments"
)


@dataclass(frozen=True)
class AgentIdentity:
    user: str
    uid: int
    gid: int
    home: Path
    isolated: bool

    def as_outputs(self) -> dict[str, Any]:
        isolation = f"own OS user {self.user} (uid {self.uid})" if self.isolated else NOT_ISOLATED
        return {"osUser": self.user, "uid": self.uid, "isolation": isolation}


def isolation_available() -> bool:
    return os.geteuid() == 0


def user_name(department_id: str) -> str:
    """``po-<id>``, shortened with a checksum when it would pass the 32-character limit."""
    name = f"po-{department_id.lower()}"
    if len(name) <= MAX_USER_NAME:
        return name
    return f"po-{department_id.lower()[:20]}-{zlib.crc32(department_id.encode()):08x}"


def _marker(department_id: str) -> str:
    return f"{USER_MARKER} {department_id}"


def _our_user(department_id: str) -> pwd.struct_passwd | None:
    """Our user for this department, None if absent; refuses a foreign one."""
    try:
        entry = pwd.getpwnam(user_name(department_id))
    except KeyError:
        return None
    if entry.pw_gecos != _marker(department_id):
        raise ProviderError(
            f"OS user {entry.pw_name} exists but was not created for agent {department_id}"
        )
    return entry


def _run_account_tool(command: list[str]) -> None:
    """useradd/userdel, retried while another one holds the passwd lock (exit 10)."""
    for attempt in range(PASSWD_LOCK_RETRIES):
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0:
            return
        if result.returncode != 10:
            detail = result.stderr.strip()
            raise ProviderError(f"{command[0]} failed ({result.returncode}): {detail}")
        time.sleep(0.1 * (attempt + 1))
    raise ProviderError(f"{command[0]}: /etc/passwd stayed locked")


def ensure_identity(department_id: str, home_root: Path) -> AgentIdentity:
    home = home_root / department_id
    if not isolation_available():
        logger.warning("agent %s is not isolated: %s", department_id, NOT_ISOLATED)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = pwd.getpwuid(os.getuid()).pw_name
        return AgentIdentity(name, os.getuid(), os.getgid(), home, False)
    entry = _our_user(department_id)
    if entry is None:
        low, high = LOCAL_AGENT_UIDS  # where agent_network's fence expects agents
        _run_account_tool([
            "useradd", "--system", "--user-group", "--no-create-home",
            "-K", f"SYS_UID_MIN={low}", "-K", f"SYS_UID_MAX={high}",
            "-K", f"SYS_GID_MIN={low}", "-K", f"SYS_GID_MAX={high}",
            "--home-dir", str(home), "--shell", "/usr/sbin/nologin",
            "--comment", _marker(department_id), user_name(department_id),
        ])  # fmt: skip
        entry = _our_user(department_id)
        assert entry is not None
    # Traverse-only parent: users reach their own directory, list nobody's.
    home_root.mkdir(parents=True, exist_ok=True)
    os.chmod(home_root, 0o711)  # noqa: S103 - traverse only, no listing
    home.mkdir(exist_ok=True, mode=0o700)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    os.chmod(home, 0o700)
    return AgentIdentity(entry.pw_name, entry.pw_uid, entry.pw_gid, home, True)


def install_code(identity: AgentIdentity) -> Path:
    """A private copy of the agent's code, so it needs nothing from the project tree."""
    target = identity.home / "department_agent"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(AGENT_CODE, target, ignore=shutil.ignore_patterns("__pycache__"))
    for path in (target, *target.iterdir()):
        os.chown(path, identity.uid, identity.gid)
    return identity.home


def remove_identity(department_id: str, home_root: Path) -> None:
    """Removes the directory, then the user (and its group); absent is fine."""
    shutil.rmtree(home_root / department_id, ignore_errors=True)
    if not isolation_available() or _our_user(department_id) is None:
        return
    _run_account_tool(["userdel", user_name(department_id)])


def agent_python() -> str:
    """An interpreter agents' users can run, with the agent's requirements installed."""
    if not isolation_available():
        return sys.executable
    digest = hashlib.sha256(AGENT_REQUIREMENTS.read_bytes()).hexdigest()[:12]
    venv = VENV_ROOT / f"agent-venv-{digest}"
    python = venv / "bin" / "python"
    if python.exists():
        return str(python)
    VENV_ROOT.mkdir(parents=True, exist_ok=True, mode=0o755)
    with open(VENV_ROOT / ".venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not python.exists():
            _build_venv(venv)
    return str(python)


def _build_venv(venv: Path) -> None:
    partial = venv.with_name(venv.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    steps = (
        ["/usr/bin/python3", "-m", "venv", str(partial)],
        [str(partial / "bin" / "pip"), "install", "--quiet", "-r", str(AGENT_REQUIREMENTS)],
    )
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode != 0:
            raise ProviderError(f"building the agent venv failed: {result.stderr[-500:]}")
    # Only console scripts (unused: agents run `python -m department_agent.serve`) embed the path.
    partial.rename(venv)


if __name__ == "__main__":
    print(agent_python())
