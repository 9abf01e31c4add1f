"""Shared pieces of the Railway driver tests: a stand-in fixture, contexts, a provider."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.providers.agent_config import AgentEndpoints
from app.providers.base import DepartmentContext
from app.providers.container_railway import RailwayContainerProvider
from tests.support.agent_env import MemorySecrets
from tests.support.railway_standin import RailwayStandIn

TOKEN = "rw-test-token-5f1c"
PROJECT_TOKEN = "rw-project-token-77ad"
IMAGE = "ghcr.io/example/agent:1.4.0"
ENDPOINTS = AgentEndpoints("db.internal", 5432, "tenants", "https://orchestrator/oauth/token")
RESOURCES = {
    "create_database": {"role": "sales_1_role", "schema": "sales_1_tenant"},
    "create_oauth": {"clientId": "dept-sales-1"},
}
DB_PASSWORD = "db-pass-Zq81!x"
OAUTH_SECRET = "oauth-secret-Hh27@k"
CONFIG = {"displayName": "Sales", "model": "small", "resources": {"cpu": "0.5", "memory": "512Mi"}}


def make_context(
    department_id: str = "sales-1",
    config: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
) -> DepartmentContext:
    return DepartmentContext(
        department_id=department_id,
        config=dict(CONFIG if config is None else config),
        resources=RESOURCES,
        secrets=MemorySecrets(
            {"database_password": DB_PASSWORD, "oauth_client_secret": OAUTH_SECRET}
            if secrets is None
            else secrets
        ),
    )


@pytest.fixture
def railway() -> Iterator[RailwayStandIn]:
    with RailwayStandIn(
        token=TOKEN, project_token=PROJECT_TOKEN, build_seconds=0.1, deploy_seconds=0.1
    ) as standin:
        yield standin


def make_provider(railway: RailwayStandIn, **overrides: Any) -> RailwayContainerProvider:
    options: dict[str, Any] = {
        "api_url": railway.url,
        "api_token": TOKEN,
        "project_id": railway.project_id,
        "environment_id": railway.environment_id,
        "image": IMAGE,
        "endpoints": ENDPOINTS,
        "variables_base": {"LOG_LEVEL": "info"},
        "poll_interval": 0.02,
        "poll_max_interval": 0.1,
        "deploy_timeout": 5.0,
        "request_budget": 200,
    }
    options.update(overrides)
    return RailwayContainerProvider(**options)
