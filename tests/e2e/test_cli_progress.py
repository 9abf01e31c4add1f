"""`flask provisioning provision FILE --wait` as a person (a terminal) and CI (a pipe) see it."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import Stack, department_payload
from tests.support import stack

FLASK = str(stack.VENV_BIN / "flask")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PROGRESS_LINE = re.compile(r"^\[#* *\] +\d+% [a-z_]+ \(\d/7 steps\)( - [a-z_]+: [a-z_]+.*)?$")
STEPS = (
    "validate_config",
    "create_database",
    "create_oauth",
    "deploy_container",
    "deploy_workflows",
    "configure_gateway",
    "validate_deployment",
)


def _config_file(tmp_path: Path, payload: dict[str, Any]) -> Path:
    path = tmp_path / f"{payload['departmentId']}.json"
    path.write_text(json.dumps(payload))
    return path


def run_in_terminal(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """Runs the command on a pseudo-terminal and returns (exit code, everything it drew)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        args,
        cwd=stack.ROOT,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"},
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(master)
    code = process.wait(timeout=10)
    return code, b"".join(chunks).decode(errors="replace")


def test_on_a_terminal_the_steps_are_drawn_live(live_stack: Stack, tmp_path: Path) -> None:
    payload = department_payload()
    args = [FLASK, "provisioning", "provision", str(_config_file(tmp_path, payload)), "--wait"]

    code, screen = run_in_terminal(args, live_stack.env)

    assert code == 0, screen
    assert "\x1b[" in screen  # drawn with colours and cursor moves, redrawn in place
    assert re.search(r"\x1b\[\d*A", screen), "the board is redrawn by moving the cursor up"
    plain = ANSI.sub("", screen)
    assert "━" in plain  # rich's bar
    assert "[/]" not in plain and "[green]" not in plain  # styles rendered, never shown as tags
    for step in STEPS:
        assert re.search(rf"✔\s+{step}\s+completed", plain), step
    assert f"{payload['departmentId']}: completed" in plain
    assert "100%" in plain
    assert "healthy: true" in plain


def test_piped_output_is_plain_lines(live_stack: Stack, tmp_path: Path, faults: Any) -> None:
    payload = department_payload()
    # Steps take milliseconds here: hold one long enough to be seen running.
    faults.arm(payload["departmentId"], "container.create", mode="delay", seconds=2, times=1)
    args = [FLASK, "provisioning", "provision", str(_config_file(tmp_path, payload)), "--wait"]

    result = subprocess.run(
        args, cwd=stack.ROOT, env=live_stack.env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "\x1b" not in result.stdout
    lines = result.stdout.splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert progress[-1] == "[####################] 100% completed (7/7 steps)"
    percentages = [int(re.search(r"\] +(\d+)%", line).group(1)) for line in progress]  # type: ignore[union-attr]
    assert percentages == sorted(percentages)
    for line in progress:
        assert PROGRESS_LINE.match(line), line
    assert any(line.endswith("- deploy_container: in_progress") for line in progress)
    assert any("Creating tenant database schema and role: done" in line for line in lines)
    assert lines[-1] == "healthy: true"


def test_a_failed_job_exits_non_zero(live_stack: Stack, tmp_path: Path, faults: Any) -> None:
    payload = department_payload()
    faults.arm(payload["departmentId"], "gateway.create", mode="fail")
    args = [FLASK, "provisioning", "provision", str(_config_file(tmp_path, payload)), "--wait"]

    result = subprocess.run(
        args, cwd=stack.ROOT, env=live_stack.env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed" in result.stdout.splitlines()[-1]
    assert "configure_gateway" in result.stderr and "error:" in result.stderr
    assert "healthy:" not in result.stdout
