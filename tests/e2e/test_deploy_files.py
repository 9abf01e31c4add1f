"""What a platform starts (Procfile, railway.json and railway/*.json) starts
the real processes: every command goes through scripts/serve.sh, and each role
of it runs against the test stack's databases and Redis."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tests.conftest import Stack
from tests.support import stack

ROOT = stack.ROOT


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def _railway_configs() -> dict[str, dict]:
    files = [ROOT / "railway.json", *sorted((ROOT / "railway").glob("*.json"))]
    return {path.stem: json.loads(path.read_text()) for path in files}


def test_every_start_command_is_a_role_of_serve_sh() -> None:
    assert _procfile() == {
        "release": "sh scripts/serve.sh migrate",
        "web": "sh scripts/serve.sh api",
        "worker": "sh scripts/serve.sh worker",
        "beat": "sh scripts/serve.sh beat",
    }
    configs = _railway_configs()
    starts = {name: config["deploy"]["startCommand"] for name, config in configs.items()}
    assert starts == {
        "railway": "sh scripts/serve.sh api",
        "worker": "sh scripts/serve.sh worker",
        "beat": "sh scripts/serve.sh beat",
    }
    assert configs["railway"]["deploy"]["preDeployCommand"] == ["sh scripts/serve.sh migrate"]
    assert configs["beat"]["deploy"]["numReplicas"] == 1  # two beats would double every schedule
    for config in configs.values():
        assert (ROOT / config["build"]["dockerfilePath"]).is_file()
    # The image's own default is the API role too, so it honours PORT anywhere.
    assert 'CMD ["sh", "scripts/serve.sh", "api"]' in (ROOT / "Dockerfile").read_text()


def _env(live_stack: Stack, tmp_path: Path) -> dict[str, str]:
    return {
        **live_stack.env,
        "PATH": f"{stack.VENV_BIN}:{os.environ['PATH']}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "BEAT_SCHEDULE_FILE": str(tmp_path / "beat-schedule"),
        "WORKER_CONCURRENCY": "1",
    }


def _run(role: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "scripts/serve.sh", role],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_migrate_is_idempotent_and_an_unknown_role_is_refused(
    live_stack: Stack, tmp_path: Path
) -> None:
    env = _env(live_stack, tmp_path)
    migrated = _run("migrate", env)
    assert migrated.returncode == 0, migrated.stderr
    assert "Context impl PostgresqlImpl" in migrated.stderr  # alembic ran, against PostgreSQL
    unknown = _run("flower", env)
    assert unknown.returncode == 2 and "usage" in unknown.stderr


def _wait_for_log(service: stack.Service, text: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in service.tail(200):
            return
        time.sleep(0.5)
    raise AssertionError(f"{service.name} never logged {text!r}:\n{service.tail()}")


def test_the_worker_and_beat_roles_start(live_stack: Stack, tmp_path: Path) -> None:
    env = _env(live_stack, tmp_path)
    worker = stack.Service("serve-worker", ["sh", "scripts/serve.sh", "worker"], env, tmp_path)
    beat = stack.Service("serve-beat", ["sh", "scripts/serve.sh", "beat"], env, tmp_path)
    worker.start()
    beat.start()
    try:
        _wait_for_log(worker, "ready.")
        _wait_for_log(beat, "beat: Starting...")
    finally:
        worker.stop()
        beat.stop()
