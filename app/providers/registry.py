"""Picks each component's driver from the settings, once per process."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from app.config import Settings
from app.providers.base import Provider
from app.providers.database_postgres import PostgresTenantProvider
from app.providers.deployment_check import DeploymentCheckProvider
from app.providers.faults import FaultInjector, FaultyProvider
from app.providers.validation import ConfigValidationProvider

COMPONENTS_CHECKED: tuple[str, ...] = ("database", "oauth", "workflows", "gateway")


def _oauth(settings: Settings) -> Provider:
    from app.providers.oauth_builtin import BuiltinOAuthProvider

    return BuiltinOAuthProvider(token_url=f"{settings.oauth_issuer}/oauth/token")


def _container(settings: Settings) -> Provider:
    if settings.CONTAINER_RUNTIME == "railway":
        from app.providers.container_railway import RailwayContainerProvider

        return RailwayContainerProvider(
            api_url=settings.RAILWAY_API_URL,
            api_token=settings.RAILWAY_API_TOKEN,
            project_id=settings.RAILWAY_PROJECT_ID,
            environment_id=settings.RAILWAY_ENVIRONMENT_ID,
            image=settings.RAILWAY_IMAGE,
        )
    from sqlalchemy.engine import make_url

    tenant_url = make_url(settings.tenant_database_url)
    target: dict[str, Any] = {
        "database_host": tenant_url.host or "127.0.0.1",
        "database_port": tenant_url.port or 5432,
        "database_name": tenant_url.database or "tenants",
        "oauth_token_url": f"{settings.oauth_issuer}/oauth/token",
    }
    if settings.CONTAINER_RUNTIME == "docker":
        from app.providers.agent_image import agent_tag
        from app.providers.container_docker import DockerContainerProvider

        image = settings.AGENT_IMAGE or agent_tag()
        return DockerContainerProvider(
            docker_host=settings.DOCKER_HOST, image=image, instance=settings.RUN_DIR, **target
        )
    from app.providers.container_local import LocalContainerProvider

    return LocalContainerProvider(run_dir=Path(settings.RUN_DIR), **target)


def _workflows(settings: Settings) -> Provider:
    from app.providers.workflows_n8n import N8nWorkflowProvider

    return N8nWorkflowProvider(base_url=settings.N8N_URL, api_key=settings.n8n_api_key)


def _gateway(settings: Settings) -> Provider:
    from app.providers.gateway_caddy import CaddyGatewayProvider

    return CaddyGatewayProvider(
        admin_url=settings.CADDY_ADMIN_URL, public_url=settings.GATEWAY_PUBLIC_URL
    )


@cache
def providers(settings: Settings) -> dict[str, Provider]:
    """Provider name -> driver, fault-wrapped when (and only when) tests enable it."""
    built: dict[str, Provider] = {
        "validation": ConfigValidationProvider(),
        "database": PostgresTenantProvider(tenant_database_url=settings.tenant_database_url),
        "oauth": _oauth(settings),
        "container": _container(settings),
        "workflows": _workflows(settings),
        "gateway": _gateway(settings),
    }
    injector = FaultInjector(settings.REDIS_URL) if settings.FAULT_INJECTION_ENABLED else None
    if injector is not None:
        built = {name: FaultyProvider(p, injector) for name, p in built.items()}
    checker: Provider = DeploymentCheckProvider([built[name] for name in COMPONENTS_CHECKED])
    built["deployment_check"] = FaultyProvider(checker, injector) if injector else checker
    return built


def provider(settings: Settings, name: str) -> Provider:
    return providers(settings)[name]


def checks_provider(settings: Settings) -> DeploymentCheckProvider:
    """The checks themselves, unwrapped: health reports never go through faults."""
    checker = providers(settings)["deployment_check"]
    inner = checker.inner if isinstance(checker, FaultyProvider) else checker
    assert isinstance(inner, DeploymentCheckProvider)
    return inner
