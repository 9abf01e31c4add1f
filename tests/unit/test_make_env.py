"""scripts/make_env.py: .env holds the secrets, so only its owner may read it."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(env_file: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_env.py"), str(env_file)],
        check=True,
        capture_output=True,
        # A permissive umask must not matter: the file is created 0600 itself.
        preexec_fn=lambda: __import__("os").umask(0o000),
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_env_file_is_private_and_holds_every_secret(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    _run(env_file)
    assert _mode(env_file) == 0o600
    names = {line.split("=", 1)[0] for line in env_file.read_text().splitlines()}
    assert {"JWT_SECRET", "SECRETS_KEY", "FLOWER_BASIC_AUTH"} <= names
    user, password = env_file.read_text().split("FLOWER_BASIC_AUTH=", 1)[1].split()[0].split(":")
    assert user and len(password) >= 24


def test_an_existing_readable_env_file_is_tightened_and_kept(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    complete = "JWT_SECRET=j\nSECRETS_KEY=k\nFLOWER_BASIC_AUTH=a:b\nWEBHOOK_SECRET=whsec_w\n"
    env_file.write_text(complete)
    env_file.chmod(0o644)
    _run(env_file)
    assert _mode(env_file) == 0o600
    assert env_file.read_text() == complete


def test_the_stack_script_makes_existing_logs_private(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    log.write_text("a line that might quote a secret\n")
    log.chmod(0o644)
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "stack.sh"), "status"],
        check=True,
        capture_output=True,
        env={"RUN_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert _mode(log) == 0o600
