"""Local agents run as their own OS users (issue 9, item 4), tested from the agent's uid.

Each attack runs a small Python program as the agent's user and group, exactly
as the agent runs, and tries to read what must stay private to the
orchestrator or to another department.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.providers import agent_users
from tests.providers.conftest import Department, bare_context
from tests.support.as_user import python_as

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="agent users need root; see README"),
]

ATTEMPT = """
import sys
path = sys.argv[1]
try:
    with open(path, "rb") as handle:
        handle.read(1)
except OSError as exc:
    print(f"refused: {exc.__class__.__name__}")
else:
    print("READ")
"""


def read_as(uid: int, gid: int, path: str) -> str:
    """Tries to read ``path`` with the given identity; 'READ' or 'refused: ...'."""
    return python_as(uid, gid, ATTEMPT, path).strip()


@pytest.fixture
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A `.env` written as scripts/make_env.py writes it, in the project root."""
    path = agent_users.PROJECT_ROOT / f".env.isolation-test-{os.getpid()}"
    path.write_text("JWT_SECRET=not-for-agents\n")
    path.chmod(0o600)
    yield path
    path.unlink(missing_ok=True)


def test_agent_runs_as_its_own_user_and_cannot_read_private_files(
    department: Department, env_file: Path
) -> None:
    outputs = department.provider.create(department.context)
    entry = pwd.getpwnam(agent_users.user_name(department.department_id))
    assert outputs["uid"] == entry.pw_uid != 0
    assert outputs["isolation"].startswith("own OS user")
    status = Path(f"/proc/{outputs['pid']}/status").read_text()
    assert f"Uid:\t{entry.pw_uid}\t{entry.pw_uid}" in status
    home = Path(entry.pw_dir)
    assert home.stat().st_mode & 0o777 == 0o700 and home.stat().st_uid == entry.pw_uid

    uid, gid = entry.pw_uid, entry.pw_gid
    assert read_as(uid, gid, str(home / "department_agent" / "app.py")) == "READ"
    assert read_as(uid, gid, str(env_file)).startswith("refused")
    real_env = agent_users.PROJECT_ROOT / ".env"
    if real_env.exists():
        assert read_as(uid, gid, str(real_env)).startswith("refused")
    assert read_as(uid, gid, str(department.pidfile)).startswith("refused")
    # The orchestrator's own environment (here: the test process, as root).
    assert read_as(uid, gid, f"/proc/{os.getpid()}/environ").startswith("refused")


def test_agents_cannot_read_each_others_environment(department: Department) -> None:
    first = department.provider.create(department.context)
    # Another department's agent identity, made the same way; the first agent's
    # environ holds its database password and OAuth secret.
    other_id = f"{department.department_id}-b"
    other = agent_users.ensure_identity(other_id, agent_users.DEFAULT_HOME_ROOT)
    try:
        assert other.isolated and other.uid != first["uid"]
        assert read_as(other.uid, other.gid, f"/proc/{first['pid']}/environ").startswith("refused")
    finally:
        agent_users.remove_identity(other_id, agent_users.DEFAULT_HOME_ROOT)
    own = pwd.getpwnam(agent_users.user_name(department.department_id))
    assert read_as(own.pw_uid, own.pw_gid, f"/proc/{first['pid']}/environ") == "READ"


def test_delete_removes_the_user_and_its_directory_idempotently(department: Department) -> None:
    department.provider.create(department.context)
    name = agent_users.user_name(department.department_id)
    home = Path(pwd.getpwnam(name).pw_dir)
    department.provider.delete(bare_context(department.department_id))
    with pytest.raises(KeyError):
        pwd.getpwnam(name)
    assert not home.exists()
    department.provider.delete(bare_context(department.department_id))  # again: no error


def test_a_user_of_that_name_not_made_by_us_is_refused_and_left_alone(
    department: Department,
) -> None:
    name = agent_users.user_name(department.department_id)
    subprocess.run(["useradd", "--system", "--no-create-home", name], check=True)
    try:
        from app.providers.base import ProviderError

        with pytest.raises(ProviderError, match="not created for agent"):
            department.provider.create(department.context)
        with pytest.raises(ProviderError, match="not created for agent"):
            department.provider.delete(bare_context(department.department_id))
        assert pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False)
