"""The `provisioning` console command as scripts use it: a real process against
the live stack, --json documents on stdout, and the documented exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from app.cli_support import Exit
from app.providers.faults import FaultInjector
from tests.conftest import Stack, department_payload
from tests.support import stack

# The console script runs app.cli_main:main (pyproject.toml); `python -c` runs the
# very same function in a process of its own, installed or not.
COMMAND = [sys.executable, "-c", "from app.cli_main import main; main()"]


def provisioning(
    env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        env=env,
        cwd=stack.ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


@pytest.fixture()
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "dept.json"
    path.write_text(json.dumps(department_payload()))
    return path


def test_the_console_script_is_declared() -> None:
    project = tomllib.loads((stack.ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["provisioning"] == "app.cli_main:main"


def test_provision_wait_json_then_the_documented_codes(
    live_stack: Stack, config_file: Path
) -> None:
    env = live_stack.env
    department_id = json.loads(config_file.read_text())["departmentId"]
    done = provisioning(env, "provision", str(config_file), "--wait", "--json")
    assert done.returncode == Exit.OK, done.stderr
    view = as_json(done)
    assert view["status"] == "completed" and view["departmentId"] == department_id

    again = provisioning(env, "provision", str(config_file), "--json")
    assert again.returncode == Exit.CONFLICT and "ACTIVE" in again.stderr

    health = provisioning(env, "health", department_id, "--json")
    assert health.returncode == Exit.OK and as_json(health)["healthy"] is True
    listed = as_json(provisioning(env, "list", "--status", "ACTIVE", "--json"))
    assert department_id in {d["departmentId"] for d in listed["departments"]}

    changes = config_file.parent / "changes.json"
    changes.write_text(json.dumps({"departmentId": department_id, "dataRetention": "30d"}))
    updated = provisioning(env, "update", str(changes), "--wait", "--json")
    assert updated.returncode == Exit.OK, updated.stderr
    assert as_json(updated)["kind"] == "update"
    history = as_json(provisioning(env, "history", department_id, "--json"))
    assert history["versions"][0]["diff"] and len(history["versions"]) == 2

    gone = provisioning(env, "deprovision", department_id, "--wait", "--json")
    assert gone.returncode == Exit.OK, gone.stderr
    assert as_json(gone)["kind"] == "deprovision"


def test_not_found_usage_and_timeout(live_stack: Stack, config_file: Path, tmp_path: Path) -> None:
    env = live_stack.env
    missing = provisioning(env, "health", "zz-no-such-dept")
    assert missing.returncode == Exit.NOT_FOUND and "not found" in missing.stderr
    assert provisioning(env, "status", "zz-no-such-dept").returncode == Exit.NOT_FOUND
    assert provisioning(env, "history", "zz-no-such-dept").returncode == Exit.NOT_FOUND
    assert provisioning(env, "nonsense").returncode == Exit.USAGE
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(department_payload(region="mars")))
    invalid = provisioning(env, "provision", str(bad))
    assert invalid.returncode == Exit.USAGE and "region" in invalid.stderr

    # A department takes about a second now, so the slow one is made slow on
    # purpose: a timeout test that races the saga fails whenever the saga wins.
    department_id = json.loads(config_file.read_text())["departmentId"]
    FaultInjector(env["REDIS_URL"]).arm(department_id, "container.create", mode="delay", seconds=5)
    slow = provisioning(env, "provision", str(config_file), "--wait", "--timeout", "1")
    assert slow.returncode == Exit.TIMEOUT and "still running" in slow.stderr
    provisioning(env, "deprovision", department_id, "--wait", "--timeout", "120")


def test_a_failed_job_exits_1(live_stack: Stack, config_file: Path) -> None:
    department_id = json.loads(config_file.read_text())["departmentId"]
    FaultInjector(live_stack.env["REDIS_URL"]).arm(department_id, "gateway.create", mode="fail")
    failed = provisioning(live_stack.env, "provision", str(config_file), "--wait", "--json")
    assert failed.returncode == Exit.FAILED
    assert as_json(failed)["status"] == "failed"


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_postgresql_or_redis_down_is_one_line(live_stack: Stack, config_file: Path) -> None:
    closed = "127.0.0.1:9"  # discard port: nothing listens
    no_db = {**live_stack.env, "DATABASE_URL": f"postgresql+psycopg2://postgres@{closed}/po"}
    result = provisioning(no_db, "list")
    assert result.returncode == Exit.UNREACHABLE
    assert "PostgreSQL is unreachable at 127.0.0.1:9/po (DATABASE_URL)" in _one_line(result)

    no_redis = {**live_stack.env, "REDIS_URL": f"redis://{closed}/0"}
    result = provisioning(no_redis, "provision", str(config_file))
    assert result.returncode == Exit.UNREACHABLE
    assert "Redis is unreachable at 127.0.0.1:9/0 (REDIS_URL)" in _one_line(result)
