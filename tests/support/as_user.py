"""Run a small Python program with another identity, as an attacker test needs."""

from __future__ import annotations

import subprocess

from app.providers import agent_users


def python_as(uid: int, gid: int, program: str, *args: str, python: str | None = None) -> str:
    """stdout of ``program`` run with exactly this uid and gid (no other groups).

    The interpreter defaults to the agents' own: the test's may sit under a 0700 home.
    """
    result = subprocess.run(
        [python or agent_users.agent_python(), "-I", "-c", program, *args],
        capture_output=True, text=True, user=uid, group=gid, extra_groups=[], cwd="/",
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout
