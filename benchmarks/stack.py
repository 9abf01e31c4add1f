"""The benchmark's own stack: fresh databases, Caddy, API, timed worker and beat.

Processes are started with `tests.support.stack.Service` (own session, killable as
a group); n8n is the shared local one, as in the tests. `teardown` removes
everything the benchmark created, whether or not deprovisioning got to it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg2
import redis
import requests
from cryptography.fernet import Fernet

from benchmarks.settings import ROOT, BenchSettings
from tests.support.stack import VENV_BIN, Service, api_server, celery_beat, run_script, wait_http

N8N_PAGE = 250
# Another n8n than the shared one on 5678 (e.g. when its owner login is not ours).
N8N_URL_OVERRIDE = os.environ.get("BENCH_N8N_URL", "")


def _n8n_key() -> str:
    default = ROOT / ".run" / "n8n-api-key"
    return Path(os.environ.get("BENCH_N8N_KEY_FILE", str(default))).read_text().strip()


def admin_sql(*statements: str, dbname: str = "postgres") -> list[tuple[object, ...]]:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=dbname)
    conn.autocommit = True
    rows: list[tuple[object, ...]] = []
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
            if cur.description is not None:
                rows = cur.fetchall()
    conn.close()
    return rows


def drop_database(name: str) -> None:
    admin_sql(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",  # noqa: S608 - fixed bench names
        f'DROP DATABASE IF EXISTS "{name}"',
    )


def drop_roles(prefix: str) -> int:
    roles = admin_sql(f"SELECT rolname FROM pg_roles WHERE rolname LIKE '{prefix}%\\_role'")  # noqa: S608
    for (role,) in roles:
        admin_sql(f'DROP ROLE IF EXISTS "{role}"')
    return len(roles)


class BenchStack:
    def __init__(self, settings: BenchSettings) -> None:
        self.settings = settings
        self.log_dir = settings.run_dir / "logs"
        self.env: dict[str, str] = {}
        self.api: Service | None = None
        self.worker: Service | None = None
        self.beat: Service | None = None
        self._redis_claimed = False

    # -- start ---------------------------------------------------------------
    def start(self) -> None:
        shutil.rmtree(self.log_dir, ignore_errors=True)  # logs of this run only
        self.log_dir.mkdir(parents=True, exist_ok=True)
        n8n_key = self._n8n()
        self.env = self._environment(n8n_key)
        self._claim_redis()
        self._fresh_databases()
        self._migrate()
        run_script(["scripts/caddy.sh", "start"], self._caddy_env())
        self.api = self._api().start()
        self.worker = self._worker(fault_injection=False).start()
        self.beat = celery_beat(self.env, self.log_dir).start()
        wait_http(f"{self.settings.api_url}/openapi.json")

    def _n8n(self) -> str:
        if N8N_URL_OVERRIDE:  # an n8n of the caller's, already set up (key in BENCH_N8N_KEY_FILE)
            return _n8n_key()
        env = {**os.environ, "RUN_DIR": str(ROOT / ".run")}
        run_script(["scripts/n8n.sh", "install", "start", "setup"], env)
        return _n8n_key()

    def _environment(self, n8n_key: str) -> dict[str, str]:
        s = self.settings
        values = {
            "APP_ENV": "test",
            "DATABASE_URL": s.state_url,
            "TENANT_DATABASE_URL": s.tenant_url,
            "REDIS_URL": s.redis_url,
            "JWT_SECRET": "bench-jwt-secret-" + "b" * 40,
            "SECRETS_KEY": Fernet.generate_key().decode(),
            "RUN_DIR": str(s.run_dir),
            "PORT": str(s.api_port),
            "PUBLIC_BASE_URL": s.api_url,
            "CADDY_ADMIN_URL": s.caddy_admin_url,
            "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{s.gateway_port}",
            "N8N_URL": N8N_URL_OVERRIDE or "http://127.0.0.1:5678",
            "N8N_API_KEY": n8n_key,
            "PROVISION_RATE_LIMIT": "100000 per hour",
            "API_RATE_LIMIT": "10000000 per minute",
            "PYTHONPATH": str(ROOT),
            "PROMETHEUS_MULTIPROC_DIR": str(s.run_dir / "prometheus"),
        }
        (s.run_dir / "prometheus").mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if k != "FAULT_INJECTION_ENABLED"}
        return {**base, **values}

    def _claim_redis(self) -> None:
        """Refuses a Redis database someone else uses: a shared broker would let another
        stack's worker take this stack's tasks (and the reverse)."""
        client = redis.Redis.from_url(self.settings.redis_url)
        if client.dbsize():
            raise RuntimeError(
                f"Redis database {self.settings.redis_db} is not empty: in use by another"
                " stack? Pick a free one with BENCH_REDIS_DB."
            )
        self._redis_claimed = True

    def _caddy_env(self) -> dict[str, str]:
        return {
            **self.env,
            "GATEWAY_PORT": str(self.settings.gateway_port),
            "RUN_DIR": str(self.settings.run_dir / "caddy"),
        }

    def _fresh_databases(self) -> None:
        for name in (self.settings.state_db, self.settings.tenant_db):
            drop_database(name)
        drop_roles(self.settings.prefix)
        for name in (self.settings.state_db, self.settings.tenant_db):
            admin_sql(f'CREATE DATABASE "{name}"')

    def _migrate(self) -> None:
        subprocess.run(
            [str(VENV_BIN / "alembic"), "upgrade", "head"],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )

    def _api(self) -> Service:
        service = api_server(self.env, self.log_dir, self.settings.api_port)
        workers = service.command.index("--workers") + 1
        service.command[workers] = str(self.settings.api_workers)
        return service

    def _worker(self, fault_injection: bool, extra: dict[str, str] | None = None) -> Service:
        env = {**self.env, "FAULT_INJECTION_ENABLED": "1"} if fault_injection else self.env
        env = {**env, **(extra or {})}
        command = [
            str(VENV_BIN / "celery"), "-A", "benchmarks.worker", "worker",
            "--loglevel", "INFO", "--concurrency", str(self.settings.worker_concurrency),
            "--hostname", "bench@%h", "--without-mingle", "--without-gossip",
        ]  # fmt: skip
        return Service("worker", command, env, self.log_dir)

    def restart_worker(self, fault_injection: bool, extra: dict[str, str] | None = None) -> None:
        """The test-only fault hook is switched on for the rollback phase alone, and
        ``extra`` settings (the step timeline's marks) for the phase that needs them."""
        if self.worker is not None:
            self.worker.stop()
        self.worker = self._worker(fault_injection, extra).start()

    def token(self) -> str:
        result = subprocess.run(
            [str(VENV_BIN / "flask"), "token", "create", "--email", "bench@example.com",
             "--role", "admin", "--ttl", "12h"],
            cwd=ROOT, env=self.env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        return result.stdout.strip().splitlines()[-1]

    # -- stop ----------------------------------------------------------------
    def teardown(self) -> list[str]:
        """Stops every process and removes every resource; returns what it did.
        Each part runs even if an earlier one failed, and failures become notes."""
        parts: list[tuple[str, Callable[[], object]]] = [
            ("processes stopped", self._stop_processes),
            ("agents stopped", lambda: len(_stop_agents(self.settings.run_dir))),
            ("containers removed", lambda: _remove_containers(self.settings.prefix)),
        ]
        if self.env:
            parts.append(("n8n workflows deleted", self._delete_workflows))
            parts.append(("caddy stopped", self._stop_caddy))
        parts.append(("databases dropped", self._drop_databases))
        parts.append(("roles dropped", lambda: drop_roles(self.settings.prefix)))
        if self._redis_claimed:
            parts.append(("redis flushed", redis.Redis.from_url(self.settings.redis_url).flushdb))
        return [_attempt(name, action) for name, action in parts]

    def _stop_processes(self) -> int:
        services = [s for s in (self.beat, self.worker, self.api) if s is not None]
        for service in services:
            service.stop()
        return len(services)

    def _stop_caddy(self) -> bool:
        run_script(["scripts/caddy.sh", "stop"], self._caddy_env())
        return True

    def _drop_databases(self) -> int:
        for name in (self.settings.tenant_db, self.settings.state_db):
            drop_database(name)
        return 2

    def _delete_workflows(self) -> int:
        """Every workflow of a benchmark department in the shared n8n (names `<id>:<wf>`)."""
        # Read the key again: another checkout's `n8n.sh setup` may have replaced it.
        key = _n8n_key()
        base, headers = self.env["N8N_URL"], {"X-N8N-API-KEY": key}
        deleted = 0
        while True:
            found = _n8n_named(base, headers, self.settings.prefix)
            if not found:
                return deleted
            for workflow in found:
                requests.delete(f"{base}/api/v1/workflows/{workflow['id']}", headers=headers,
                                timeout=15).raise_for_status()  # fmt: skip
                deleted += 1


def _attempt(name: str, action: Callable[[], object]) -> str:
    try:
        return f"{name}: {action()}"
    except Exception as exc:  # teardown must go on; the report says what failed
        return f"{name}: FAILED ({type(exc).__name__}: {str(exc)[:200]})"


def _n8n_named(base: str, headers: dict[str, str], prefix: str) -> list[dict[str, object]]:
    response = requests.get(
        f"{base}/api/v1/workflows",
        headers=headers,
        params={"name": prefix, "limit": N8N_PAGE},
        timeout=30,
    )
    response.raise_for_status()
    return [w for w in response.json()["data"] if str(w["name"]).startswith(prefix)]


def _remove_containers(prefix: str) -> int:
    """Agent containers (and their volumes) of benchmark departments that the
    API did not deprovision within its time: the engine outlives the run."""
    import docker
    from app.providers.docker_agent import LABEL_DEPARTMENT, LABEL_MANAGED, volume_name

    answer = subprocess.run([str(ROOT / "scripts/docker_engine.sh"), "host"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    if answer.returncode != 0:
        return 0  # no engine: no containers
    client = docker.DockerClient(base_url=answer.stdout.strip(), timeout=120)
    left = [c for c in client.containers.list(all=True, filters={"label": LABEL_MANAGED})
            if c.labels.get(LABEL_DEPARTMENT, "").startswith(prefix)]  # fmt: skip
    for container in left:
        container.remove(force=True)
    for volume in client.volumes.list():
        if volume.name.startswith(volume_name(prefix).removesuffix("-settings")):
            with contextlib.suppress(docker.errors.APIError):
                volume.remove(force=True)
    return len(left)


def _stop_agents(run_dir: Path) -> list[str]:
    from app.providers.agent_process import stop_all_agents

    return stop_all_agents(run_dir)
