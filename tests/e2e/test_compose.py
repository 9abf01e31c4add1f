"""docker-compose.yml and the app image, proved as far as this machine allows.

No registry is reachable here, so Compose's registry images (postgres, redis,
n8n, caddy) cannot be pulled and `docker compose up` is not run. What is run:
`docker-compose config` (Debian's Compose) validates the file, with and
without a .env; the project's own app image is built (FROM the project's
Debian base) and its API, worker and beat commands run exactly as Compose
gives them, with Compose's environment, pointed at this suite's stack; the
containerised API and worker provision a department end to end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from flask import Flask

import docker
from tests.conftest import API_PORT, Stack, department_payload, make_token
from tests.support.stack import ROOT

COMPOSE = shutil.which("docker-compose")
CONTAINER_API_PORT = API_PORT + 3
APP_UID = 10002  # the app image's user (Dockerfile)
# What Compose points at its own services; here, this suite's stack instead.
STACK_ENDPOINTS = (
    "DATABASE_URL", "TENANT_DATABASE_URL", "REDIS_URL",
    "GATEWAY_PUBLIC_URL", "N8N_URL", "N8N_API_KEY", "JWT_SECRET", "SECRETS_KEY",
    "DOCKER_HOST", "AGENT_IMAGE",
)  # fmt: skip

pytestmark = pytest.mark.skipif(COMPOSE is None, reason="apt-get install docker-compose")


def compose_config(env: dict[str, str], cwd: Path = ROOT) -> dict[str, Any]:
    result = subprocess.run(
        [str(COMPOSE), "-f", "docker-compose.yml", "config"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_compose_config_validates_without_a_dotenv(tmp_path: Path) -> None:
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}
    services = compose_config(clean, cwd=tmp_path)["services"]
    assert {"api", "worker", "beat", "flower", "migrate", "n8n-setup"} <= set(services)
    worker = services["worker"]
    assert worker["environment"]["GATEWAY_PUBLIC_URL"] == "http://127.0.0.1:8080"
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "FLOWER_UNAUTHENTICATED_API" not in services["flower"]["environment"]
    for name in ("api", "worker", "flower", "postgres", "redis", "n8n", "caddy"):
        assert services[name].get("restart") == "unless-stopped", name
        assert "healthcheck" in services[name] or name == "api", name  # api: the image's


@pytest.fixture(scope="module")
def app_image(live_stack: Stack) -> str:
    if live_stack.env.get("CONTAINER_RUNTIME") != "docker":
        pytest.skip("needs the docker runtime's engine")
    built = subprocess.run(
        [sys.executable, "scripts/app_image.py"],
        cwd=ROOT, env={**live_stack.env, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    return built.stdout.strip()


@pytest.fixture
def compose_processes(live_stack: Stack, app_image: str) -> Iterator[tuple[Any, dict[str, Any]]]:
    """api, worker and beat from the app image; the suite's own worker and beat
    are stopped meanwhile, so every job is the containers' to run."""
    engine = docker.DockerClient(base_url=live_stack.env["DOCKER_HOST"])  # type: ignore[attr-defined]
    services = compose_config({**os.environ})["services"]
    socket_path = live_stack.env["DOCKER_HOST"].removeprefix("unix://")
    # Caddy's admin socket as Compose shares it: in the run volume, the app uid's.
    admin_socket = Path(live_stack.env["CADDY_ADMIN_URL"].removeprefix("unix://"))
    caddy_admin = {
        str(admin_socket.parent): {"bind": "/run/orchestrator/caddy-admin", "mode": "rw"}
    }
    started: dict[str, Any] = {}
    live_stack.worker.stop()
    live_stack.beat.stop()
    _own(admin_socket, APP_UID)
    try:
        for name in ("api", "worker", "beat"):
            env = dict(services[name]["environment"])
            env.update(
                {key: live_stack.env[key] for key in STACK_ENDPOINTS if key in live_stack.env}
            )
            env.update(PORT=str(CONTAINER_API_PORT), DOCKER_HOST="unix:///var/run/docker.sock")
            env["PUBLIC_BASE_URL"] = live_stack.env["PUBLIC_BASE_URL"]
            started[name] = engine.containers.run(
                app_image, services[name]["command"], detach=True, environment=env,
                network_mode="host", name=f"po-compose-test-{name}-{os.getpid()}",
                group_add=(services[name].get("group_add") and [str(_docker_gid())]) or None,
                volumes={socket_path: {"bind": "/var/run/docker.sock", "mode": "rw"}, **caddy_admin}
                if name == "worker" else caddy_admin,
            )  # fmt: skip
        yield engine, started
    finally:
        _own(admin_socket, 0)
        for container in started.values():
            print(container.logs(tail=40).decode(errors="replace"), file=sys.stderr)
            container.remove(force=True)
        live_stack.worker = live_stack.worker.__class__(
            live_stack.worker.name, live_stack.worker.command, live_stack.env, live_stack.log_dir
        ).start()
        live_stack.restart_beat()


def _own(admin_socket: Path, uid: int) -> None:
    for path in (admin_socket.parent, admin_socket):
        os.chown(path, uid, uid)


def _docker_gid() -> int:
    import grp

    return grp.getgrnam("docker").gr_gid


def test_the_app_image_runs_composes_api_worker_and_beat_end_to_end(
    compose_processes: tuple[Any, dict[str, Any]], app: Flask
) -> None:
    engine, started = compose_processes
    base = f"http://127.0.0.1:{CONTAINER_API_PORT}"
    _wait(lambda: requests.get(f"{base}/openapi.json", timeout=2).ok, "containerised API")
    assert started["api"].attrs["Config"]["User"] == "10002:10002"
    headers = {"Authorization": f"Bearer {make_token(app)}"}
    payload = department_payload()
    response = requests.post(
        f"{base}/api/provision-department", json=payload, headers=headers, timeout=10
    )
    assert response.status_code == 202, response.text
    status_url = f"{base}/api/provision-status/{response.json()['provisioningId']}"

    def finished() -> bool:
        return requests.get(status_url, headers=headers, timeout=5).json()["status"] in (
            "completed", "failed",
        )  # fmt: skip

    _wait(finished, "the job, run by the containerised worker", timeout=180)
    view = requests.get(status_url, headers=headers, timeout=5).json()
    assert view["status"] == "completed", view
    agents = engine.containers.list(filters={"label": f"department-id={payload['departmentId']}"})
    assert len(agents) == 1
    _wait(lambda: b"Sending due task" in started["beat"].logs(), "beat's schedule", timeout=60)
    gone = requests.delete(
        f"{base}/api/deprovision/{payload['departmentId']}", headers=headers, timeout=10
    )
    assert gone.status_code == 202, gone.text
    _wait(
        lambda: (
            not engine.containers.list(
                all=True, filters={"label": f"department-id={payload['departmentId']}"}
            )
        ),
        "deprovisioning by the containerised worker",
        timeout=120,
    )


def _wait(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} did not get there within {timeout}s")
