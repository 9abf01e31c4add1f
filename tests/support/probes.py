"""Looks at the real systems directly, to check what exists for a department."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psycopg2
import requests

from app.providers.agent_process import find_agent_pids
from tests.support.caddy_admin import caddy_admin


def tenant_schema_exists(dbname: str, department_id: str) -> bool:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
                (department_id.replace("-", "_") + "_tenant",),
            )
            return cur.fetchone() is not None
    finally:
        conn.close()


def tenant_role_exists(department_id: str) -> bool:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s",
                (department_id.replace("-", "_") + "_role",),
            )
            return cur.fetchone() is not None
    finally:
        conn.close()


def oauth_client_active(state_dbname: str, department_id: str) -> bool:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=state_dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM oauth_clients WHERE department_id = %s AND revoked_at IS NULL",
                (department_id,),
            )
            return cur.fetchone() is not None
    finally:
        conn.close()


def agent_pids(department_id: str) -> list[int]:
    """The agent's processes: local ones by their environment, containers by label."""
    if os.environ.get("CONTAINER_RUNTIME") == "docker":
        from app.providers.container_docker import running_container_pids

        return running_container_pids(os.environ["DOCKER_HOST"], department_id)
    return find_agent_pids(department_id)


def stop_agent(department_id: str) -> None:
    """Takes the agent down the way an operator or a crash would: SIGKILL locally;
    for a container, `docker stop` (a killed one is restarted by its restart policy)."""
    if os.environ.get("CONTAINER_RUNTIME") == "docker":
        import docker

        client = docker.DockerClient(base_url=os.environ["DOCKER_HOST"])  # type: ignore[attr-defined]
        for container in client.containers.list(
            filters={"label": f"department-id={department_id}"}
        ):
            container.stop(timeout=2)
        return
    for pid in find_agent_pids(department_id):
        os.kill(pid, signal.SIGKILL)


def gateway_route_count(admin_url: str, department_id: str) -> int:
    routes = caddy_admin(admin_url, "GET", "/config/apps/http/servers/gateway/routes").json()
    return sum(1 for route in routes or [] if route.get("@id") == f"dept-{department_id}")


def all_n8n_workflows(base_url: str, api_key: str, name: str | None = None) -> list[dict]:
    """Every page: the shared n8n may hold far more than one page of workflows."""
    workflows: list[dict] = []
    params: dict[str, object] = {"limit": 250}
    if name:
        params["name"] = name
    while True:
        response = requests.get(
            f"{base_url}/api/v1/workflows",
            params=params,
            headers={"X-N8N-API-KEY": api_key},
            timeout=30,
        )
        response.raise_for_status()
        body = response.json()
        workflows += body["data"]
        if not body.get("nextCursor"):
            return workflows
        params["cursor"] = body["nextCursor"]


def n8n_workflows(base_url: str, api_key: str, department_id: str) -> list[dict]:
    # n8n's name filter is a substring match: keep only this department's prefix.
    found = all_n8n_workflows(base_url, api_key, name=f"{department_id}:")
    return [w for w in found if w["name"].startswith(f"{department_id}:")]


def pidfile_exists(run_dir: Path, department_id: str) -> bool:
    return (run_dir / "agents" / f"{department_id}.pid").exists()


def purge_n8n_workflows(base_url: str, api_key: str, prefix: str) -> int:
    """Test departments' workflows outlive the session otherwise: n8n is shared."""
    doomed = [
        w for w in all_n8n_workflows(base_url, api_key, name=prefix) if w["name"].startswith(prefix)
    ]
    for workflow in doomed:
        requests.delete(
            f"{base_url}/api/v1/workflows/{workflow['id']}",
            headers={"X-N8N-API-KEY": api_key},
            timeout=30,
        )
    return len(doomed)
