"""The API started from an environment file written as the original service
documents it: its variable names, its milliseconds, its inline comments.

The file goes in as docker's `env_file` (and Railway's raw editor) pass it:
every `KEY=value` line literally, so `300000  # 5 minutes` arrives with its
comment. Values are this machine's (the test databases, the local n8n, a port
of this slot); what this project needs beyond the original (`SECRETS_KEY`,
`REDIS_URL`) is appended below it. Nothing else reaches the process: no
DATABASE_URL, no N8N_URL, no APP_ENV.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
import requests
from flask import Flask

from tests.conftest import SLOT, TEST_DB, TEST_PREFIX, Stack, department_payload, make_token
from tests.e2e.conftest import wait_for_job
from tests.support import stack

PORT = 30000 + 1000 * SLOT + 11  # this slot's range for extra ports

ORIGINAL_ENV_FILE = """\
# Server Configuration
PORT={port}
NODE_ENV=production

# JWT Authentication
JWT_SECRET={jwt_secret}

# Database Configuration
DB_HOST=127.0.0.1
DB_PORT=5432
DB_NAME={db_name}
DB_USER=postgres
DB_PASSWORD=your-password

# External Service API Keys
RAILWAY_API_TOKEN=your-railway-token
N8N_API_KEY={n8n_key}
N8N_BASE_URL={n8n_url}

# Timeouts (milliseconds)
MAX_PROVISIONING_TIME=300000  # 5 minutes
STEP_TIMEOUT=60000            # 1 minute
"""


def as_env_file_passes_it(text: str) -> dict[str, str]:
    """docker --env-file semantics: comments and blank lines skipped, values literal."""
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {name: value for name, value in pairs}


def process_env(file_text: str, run_dir: Path) -> dict[str, str]:
    base = {
        "PATH": f"{stack.VENV_BIN}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(stack.ROOT),
        "RUN_DIR": str(run_dir),
        "PROMETHEUS_MULTIPROC_DIR": str(run_dir / "prometheus"),
    }
    return {**base, **as_env_file_passes_it(file_text)}


def original_file(live_stack: Stack, additions: str = "") -> str:
    env = live_stack.env
    text = ORIGINAL_ENV_FILE.format(
        port=PORT,
        jwt_secret=env["JWT_SECRET"],
        db_name=TEST_DB,
        n8n_key=env["N8N_API_KEY"],
        n8n_url=env["N8N_URL"],
    )
    this_project = f"SECRETS_KEY={env['SECRETS_KEY']}\nREDIS_URL={env['REDIS_URL']}\n"
    return text + "\n# This project's additions\n" + this_project + additions


def _job_limits(job_id: str, dbname: str = TEST_DB) -> tuple[float, float]:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT step_timeout, EXTRACT(EPOCH FROM deadline_at - created_at)"
                " FROM provisioning_jobs WHERE id = %s",
                (job_id,),
            )
            step, deadline = cur.fetchone()
    finally:
        conn.close()
    return float(step), float(deadline)


def test_the_original_env_file_starts_the_api_with_its_limits(
    live_stack: Stack, app: Flask, tmp_path: Path
) -> None:
    env = process_env(original_file(live_stack), tmp_path)
    assert env["MAX_PROVISIONING_TIME"] == "300000  # 5 minutes"  # as docker passes it
    api = stack.Service("original-env-api", ["sh", "scripts/serve.sh", "api"], env, tmp_path)
    api.start()
    try:
        stack.wait_http(f"http://127.0.0.1:{PORT}/openapi.json", timeout=60)
        token = make_token(app)
        payload = department_payload(f"{TEST_PREFIX}env{uuid.uuid4().hex[:6]}")
        accepted = requests.post(
            f"http://127.0.0.1:{PORT}/api/provision-department",
            json=payload,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert accepted.status_code == 202, accepted.text + api.tail()
        job_id = accepted.json()["provisioningId"]
        # Fixed on the job at submission: 60 s per step, 300 s for the job (not 83 hours).
        assert _job_limits(job_id) == (60.0, pytest.approx(300.0, abs=1.0))
        cancel = requests.post(
            f"http://127.0.0.1:{PORT}/api/provision-status/{job_id}/cancel",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert cancel.status_code in (202, 409), cancel.text  # 409: it already finished
    finally:
        api.stop()
    assert wait_for_job(job_id)["completedAt"]


def test_an_ambiguous_timeout_stops_the_api_at_start_naming_it(
    live_stack: Stack, tmp_path: Path
) -> None:
    """`STEP_TIMEOUT=60`: seconds to this project's users, 60 ms to the original's."""
    # Two API workers (serve.sh's default): the master must refuse before either
    # boots, or gunicorn adds tracebacks of its own when both fail.
    text = original_file(live_stack, additions="AUTO_REPAIR=ture\nAPI_WORKERS=2\n")
    text = text.replace("STEP_TIMEOUT=60000            # 1 minute", "STEP_TIMEOUT=60")
    result = subprocess.run(
        ["sh", "scripts/serve.sh", "api"],
        cwd=stack.ROOT,
        env=process_env(text, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "STEP_TIMEOUT='60': a bare number is milliseconds" in output
    assert "AUTO_REPAIR='ture': not a boolean" in output
    assert "Traceback" not in output


STACK_PORT = PORT + 1
FLOWER_PORT = PORT + 2
REDIS_PORT = PORT + 3
OWN_DB = f"{TEST_DB}_envfile"


def _stack_file(live_stack: Stack) -> str:
    """The original's file as an operator would keep it for `make up`: its own
    database and Redis, this machine's Caddy and n8n, one process of each kind."""
    text = original_file(live_stack).replace(f"PORT={PORT}\n", f"PORT={STACK_PORT}\n", 1)
    text = text.replace(f"DB_NAME={TEST_DB}\n", f"DB_NAME={OWN_DB}\n")
    text = text.replace(live_stack.env["REDIS_URL"], f"redis://127.0.0.1:{REDIS_PORT}/0")
    env = live_stack.env
    return text + (
        f"CADDY_ADMIN_URL={env['CADDY_ADMIN_URL']}\nGATEWAY_PUBLIC_URL={env['GATEWAY_PUBLIC_URL']}\n"
        f"FLOWER_PORT={FLOWER_PORT}\nAPI_WORKERS=1\nWORKER_CONCURRENCY=1\n"
    )


def _drop_own_databases() -> None:
    from tests.conftest import _drop_databases

    _drop_databases(OWN_DB, f"{OWN_DB}_tenants")


def test_make_ups_stack_script_runs_the_whole_stack_from_the_original_env_file(
    live_stack: Stack, app: Flask, tmp_path: Path
) -> None:
    """`scripts/stack.sh start` (what `make up` runs) with only ENV_FILE pointing at
    the original's .env: gunicorn listens on its PORT, and a department is
    provisioned and removed under its limits by this stack's own worker."""
    from app.providers.container_local import stop_all_agents

    env_file = tmp_path / "original.env"
    env_file.write_text(_stack_file(live_stack))
    env = {
        "PATH": f"{stack.VENV_BIN}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(stack.ROOT),
        "RUN_DIR": str(tmp_path / "run"),
        "ENV_FILE": str(env_file),
    }
    redis = stack.Service(
        "own-redis",
        ["redis-server", "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"],
        env,
        tmp_path,
    ).start()
    try:
        migrated = subprocess.run(
            ["sh", "scripts/serve.sh", "migrate"],
            cwd=stack.ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stderr
        started = subprocess.run(
            ["bash", "scripts/stack.sh", "start"],
            cwd=stack.ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert started.returncode == 0, started.stderr
        _provision_and_remove(app, live_stack)
    finally:
        subprocess.run(
            ["bash", "scripts/stack.sh", "stop"],
            cwd=stack.ROOT,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        stop_all_agents(tmp_path / "run")
        redis.stop()
        _drop_own_databases()


def _provision_and_remove(app: Flask, live_stack: Stack) -> None:
    base = f"http://127.0.0.1:{STACK_PORT}"
    headers = {"Authorization": f"Bearer {make_token(app)}"}
    department_id = f"{TEST_PREFIX}st{uuid.uuid4().hex[:6]}"
    accepted = requests.post(
        f"{base}/api/provision-department",
        json=department_payload(department_id),
        headers=headers,
        timeout=30,
    )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["provisioningId"]
    assert _job_limits(job_id, OWN_DB) == (60.0, pytest.approx(300.0, abs=1.0))
    assert _follow(f"{base}/api/provision-status/{job_id}", headers)["status"] == "completed"
    gone = requests.delete(f"{base}/api/deprovision/{department_id}", headers=headers, timeout=30)
    assert gone.status_code == 202, gone.text
    final = _follow(f"{base}{gone.json()['statusUrl']}", headers)
    assert final["status"] == "completed", final


def _follow(url: str, headers: dict[str, str], timeout: float = 150.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = requests.get(url, headers=headers, timeout=10).json()
        if view.get("completedAt"):
            return view
        time.sleep(0.5)
    raise AssertionError(f"{url} did not finish: {view}")
