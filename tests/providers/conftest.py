"""The department fixture the agent runtime tests share: a tenant, a token endpoint, a provider."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from app.providers.base import DepartmentContext
from app.providers.container_local import LocalContainerProvider
from tests.support.agent_env import (
    MemorySecrets,
    TenantDatabase,
    TokenEndpoint,
    database_name,
    kill_leftovers,
)
from tests.support.caddy import CaddyInstance


@dataclass
class Department:
    """One department's world: its context, its peers and a provider pointed at them."""

    context: DepartmentContext
    secrets: MemorySecrets
    tenant: TenantDatabase
    token: TokenEndpoint
    provider: LocalContainerProvider
    provider_args: dict[str, Any]
    run_dir: Path

    @property
    def department_id(self) -> str:
        return self.context.department_id

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "agents" / f"{self.department_id}.pid"

    def secret_values(self) -> list[str]:
        return [self.tenant.password, self.token.client_secret]


@pytest.fixture(scope="session")
def postgres_database() -> str:
    try:
        return database_name()
    except psycopg2.OperationalError as exc:
        pytest.skip(f"local PostgreSQL is not reachable: {exc}")


def _config(memory: str = "512Mi", cpu: str = "500m") -> dict[str, Any]:
    return {
        "departmentName": "Agent Test Department",
        "workflows": [{"name": "intake", "enabled": True}, {"name": "archive", "enabled": False}],
        "enabledTools": ["search", "mail"],
        "resources": {"memory": memory, "cpu": cpu},
    }


@pytest.fixture
def department(tmp_path: Path, postgres_database: str) -> Iterator[Department]:
    department_id = f"agt-{uuid.uuid4().hex[:10]}"
    slug = department_id.replace("-", "_")
    tenant = TenantDatabase(slug).create()
    token = TokenEndpoint(f"client-{department_id}", "cs-" + uuid.uuid4().hex).start()
    secrets = MemorySecrets(
        {"database_password": tenant.password, "oauth_client_secret": token.client_secret}
    )
    context = DepartmentContext(
        department_id=department_id,
        config=_config(),
        resources={
            "create_database": {"role": tenant.role, "schema": tenant.schema},
            "create_oauth": {"clientId": token.client_id},
        },
        secrets=secrets,
    )
    provider_args: dict[str, Any] = {
        "database_host": "127.0.0.1",
        "database_port": 5432,
        "database_name": postgres_database,
        "oauth_token_url": token.url,
        "start_timeout": 30.0,
    }
    provider = LocalContainerProvider(run_dir=tmp_path, **provider_args)
    world = Department(context, secrets, tenant, token, provider, provider_args, tmp_path)
    try:
        yield world
    finally:
        try:
            provider.delete(bare_context(department_id))
        finally:
            leftovers = kill_leftovers(department_id)
            token.stop()
            tenant.drop()
        assert leftovers == [], f"delete left agent processes behind: {leftovers}"


def bare_context(department_id: str) -> DepartmentContext:
    """What cleanup has when every record is gone: the id and nothing else."""
    return DepartmentContext(department_id, config={}, resources={}, secrets=MemorySecrets())


# The gateway tests' own Caddy, one per session (admin API on its socket).
GATEWAY_PORT = 18080 + 10 * int(os.environ.get("TEST_SLOT", "0"))


@pytest.fixture(scope="session")
def caddy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaddyInstance]:
    if shutil.which("caddy") is None:
        pytest.skip("caddy is not installed (apt-get install -y caddy)")
    instance = CaddyInstance(GATEWAY_PORT, tmp_path_factory.mktemp("caddy-run"))
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
