"""Shared fixtures: the real stack the end-to-end tests run against.

PostgreSQL and Redis must be up (`scripts/services.sh`). The session starts its
own Caddy, reuses (or starts) n8n, and runs a real API (gunicorn), Celery
worker and beat as separate processes, on ports of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import redis
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient

from tests.support import stack

# TEST_SLOT lets several suites run side by side on one machine (each its own
# databases, Redis database and ports); CI uses slot 0.
SLOT = int(os.environ.get("TEST_SLOT", "0"))
TEST_DB = "po_test" if SLOT == 0 else f"po_test_{SLOT}"
STATE_URL = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{TEST_DB}"
TENANT_URL = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{TEST_DB}_tenants"
REDIS_URL = f"redis://127.0.0.1:6379/{14 - SLOT}"
API_PORT = 23000 + 10 * SLOT
GATEWAY_PORT = 28080 + 10 * SLOT
TEST_PREFIX = "zt" if SLOT == 0 else f"z{SLOT}"  # every test department starts with it


def _admin_sql(*statements: str, dbname: str = "postgres") -> None:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=dbname)
    conn.autocommit = True
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    conn.close()


def _drop_test_roles() -> None:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"{TEST_PREFIX}%_role",))
        for (role,) in cur.fetchall():
            cur.execute(f'DROP ROLE IF EXISTS "{role}"')
    conn.close()


def _drop_databases(*names: str) -> None:
    for name in names:
        _admin_sql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",  # noqa: S608 - fixed test names
            f'DROP DATABASE IF EXISTS "{name}"',
        )


def _fresh_databases() -> None:
    from app.providers.database_lockdown import STACK_DATABASES, ensure, lock_down

    _drop_databases(TEST_DB, f"{TEST_DB}_tenants")
    _drop_test_roles()
    # What `make migrate` does: both created closed to PUBLIC, and so is every
    # other database of the stack.
    ensure(STATE_URL)
    ensure(TENANT_URL)
    lock_down(STATE_URL, (*STACK_DATABASES, TEST_DB, f"{TEST_DB}_tenants"))


def _migrate() -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(stack.ROOT / "alembic.ini"))
    cfg.attributes["url"] = STATE_URL
    command.upgrade(cfg, "head")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
def n8n_api_key() -> str:
    """The shared local n8n (installed once, reused); started if it is not running.
    TEST_N8N_URL + TEST_N8N_KEY_FILE name another, already set up, instead (for when
    the shared one's owner login is not this checkout's)."""
    if os.environ.get("TEST_N8N_URL"):
        return Path(os.environ["TEST_N8N_KEY_FILE"]).read_text().strip()
    env = {**os.environ, "RUN_DIR": str(stack.ROOT / ".run")}
    stack.run_script(["scripts/n8n.sh", "install", "start", "setup"], env)
    return (stack.ROOT / ".run" / "n8n-api-key").read_text().strip()


@pytest.fixture(scope="session")
def container_runtime() -> Iterator[dict[str, str]]:
    """The runtime the stack deploys agents with: `docker` (the default) on an
    engine that answers or that the session starts; TEST_CONTAINER_RUNTIME=local
    runs the suite on host processes instead."""
    if os.environ.get("TEST_CONTAINER_RUNTIME", "docker") != "docker":
        yield {"CONTAINER_RUNTIME": os.environ["TEST_CONTAINER_RUNTIME"]}
        return
    from tests.support.docker_engine import ensure_engine, stop_engine_if_ours

    engine = ensure_engine()
    yield {"CONTAINER_RUNTIME": "docker", "DOCKER_HOST": engine.host, "AGENT_IMAGE": engine.image}
    stop_engine_if_ours(engine)


@pytest.fixture(scope="session")
def test_env(run_dir: Path, n8n_api_key: str, container_runtime: dict[str, str]) -> dict[str, str]:
    values = {
        **container_runtime,
        "APP_ENV": "test",
        "DATABASE_URL": STATE_URL,
        "TENANT_DATABASE_URL": TENANT_URL,
        "REDIS_URL": REDIS_URL,
        "JWT_SECRET": "test-jwt-secret-" + "s" * 40,
        "SECRETS_KEY": Fernet.generate_key().decode(),
        "RUN_DIR": str(run_dir),
        "PORT": str(API_PORT),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{API_PORT}",
        # The socket scripts/caddy.sh opens in the RUN_DIR live_stack gives it.
        "CADDY_ADMIN_URL": f"unix://{run_dir}/caddy/caddy-home/admin.sock",
        "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{GATEWAY_PORT}",
        "N8N_URL": os.environ.get("TEST_N8N_URL", "http://127.0.0.1:5678"),
        "N8N_API_KEY": n8n_api_key,
        "FAULT_INJECTION_ENABLED": "1",
        "STEP_TIMEOUT": "30s",
        "MAX_PROVISIONING_TIME": "180s",
        "STALL_TIMEOUT": "5",
        "SWEEP_INTERVAL": "1",
        "FINAL_COPY_PURGE_INTERVAL": "1",
        "HEARTBEAT_INTERVAL": "1",
        "RETRY_BASE": "0.2",
        # With the shorter base, the default 6 validation retries give a new
        # deployment 13 s to answer (63 s in production); 8 give it 51 s, as a
        # loaded CI machine booting a dozen agents at once may need. Only a
        # deployment that stays unhealthy waits longer for its rollback.
        "VALIDATION_RETRY_MAX": "8",
        "PROVISION_RATE_LIMIT": "10000 per hour",
        "API_RATE_LIMIT": "100000 per minute",
        # The security matrix sends hundreds of bad tokens from one address.
        "AUTH_FAILURE_RATE_LIMIT": "100000 per minute",
        "OAUTH_RATE_LIMIT": "100000 per minute",
        "OAUTH_CLIENT_RATE_LIMIT": "100000 per minute",
        "OAUTH_PURGE_INTERVAL": "2",
    }
    os.environ.update(values)
    return {**os.environ, **values, "PYTHONPATH": str(stack.ROOT)}


class Stack:
    """The running processes, so that a test may kill or restart one."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.worker = stack.celery_worker(env, log_dir, "worker-a")
        self.beat = stack.celery_beat(env, log_dir)
        self.api = stack.api_server(env, log_dir, API_PORT)
        self.generation = 0

    def restart_worker(self, crash: bool = False) -> None:
        self.worker.kill9() if crash else self.worker.stop()
        self.generation += 1
        self.worker = stack.celery_worker(self.env, self.log_dir, f"worker-b{self.generation}")
        self.worker.start()

    def restart_beat(self) -> None:
        self.beat.stop()
        self.beat = stack.celery_beat(self.env, self.log_dir)
        self.beat.start()

    def stop(self) -> None:
        for service in (self.beat, self.worker, self.api):
            service.stop()


@pytest.fixture(scope="session")
def live_stack(test_env: dict[str, str], run_dir: Path) -> Iterator[Stack]:
    _fresh_databases()
    _migrate()
    redis.Redis.from_url(REDIS_URL).flushdb()
    caddy_env = {
        **test_env,
        "GATEWAY_PORT": str(GATEWAY_PORT),
        "RUN_DIR": str(run_dir / "caddy"),
    }
    stack.run_script(["scripts/caddy.sh", "start"], caddy_env)
    _purge_workflows(test_env)
    services = Stack(test_env, run_dir)
    try:
        services.api.start()
        services.worker.start()
        services.beat.start()
        stack.wait_http(f"http://127.0.0.1:{API_PORT}/openapi.json")
        yield services
    finally:
        # Also when start-up failed: nothing of this session may outlive it.
        services.stop()
        from app.providers.agent_process import stop_all_agents

        stop_all_agents(run_dir)
        _remove_test_containers(test_env)
        stack.run_script(["scripts/caddy.sh", "stop"], caddy_env)
        # The tenants database goes (with the roles' objects), so the roles can go
        # too; the state database stays for a look after a failed run.
        _drop_databases(f"{TEST_DB}_tenants")
        _drop_test_roles()
        _purge_workflows(test_env)


def _remove_test_containers(env: dict[str, str]) -> None:
    """Agent containers of this slot's departments, whatever their records say."""
    if env.get("CONTAINER_RUNTIME") != "docker":
        return
    import docker

    client = docker.DockerClient(base_url=env["DOCKER_HOST"])  # type: ignore[attr-defined]
    for container in client.containers.list(all=True, filters={"label": "department-id"}):
        if container.labels.get("department-id", "").startswith(TEST_PREFIX):
            container.remove(force=True, v=True)
    for volume in client.volumes.list(filters={"label": "department-id"}):
        if (volume.attrs.get("Labels") or {}).get("department-id", "").startswith(TEST_PREFIX):
            volume.remove(force=True)


def _purge_workflows(env: dict[str, str]) -> None:
    from tests.support.probes import purge_n8n_workflows

    purge_n8n_workflows(env["N8N_URL"], env["N8N_API_KEY"], TEST_PREFIX)


@pytest.fixture(scope="session")
def app(live_stack: Stack) -> Flask:
    from app import create_app

    return create_app()


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def make_token(
    app: Flask,
    role: str = "admin",
    department_id: str | None = None,
    ttl: timedelta = timedelta(hours=6),  # session-wide: a slow run outlives 30 min
    email: str = "ops@example.com",
) -> str:
    from app.api.auth import mint_token

    with app.app_context():
        return mint_token(email, role, department_id, ttl)


@pytest.fixture(scope="session")
def admin_headers(app: Flask) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(app)}"}


def new_department_id() -> str:
    return f"{TEST_PREFIX}{uuid.uuid4().hex[:8]}"


def department_payload(department_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "departmentId": department_id or new_department_id(),
        "departmentName": "Test Department",
        "businessType": "internal_services",
        "workflows": ["email", "database"],
        "dataRetention": "90d",
        "region": "us-east",
        "resources": {"cpu": "0.5", "memory": "512Mi"},
        "adminEmail": "admin@example.com",
        "googleWorkspaceDomain": "example.com",
        "enabledTools": ["gmail", "database_query"],
        "customConfig": {"greeting": "hi"},
    }
    payload.update(overrides)
    return payload
