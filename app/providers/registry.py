"""Picks each component's driver from the settings, once per process."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from app.config import Settings
from app.domain.department import ConfigRules
from app.providers.agent_network import FencedContainer, NetworkFence, redis_ports
from app.providers.base import Provider
from app.providers.database_postgres import PostgresTenantProvider
from app.providers.deployment_check import DeploymentCheckProvider
from app.providers.faults import FaultInjector, FaultyProvider
from app.providers.validation import ConfigValidationProvider

COMPONENTS_CHECKED: tuple[str, ...] = ("database", "oauth", "workflows", "gateway")


def _oauth(settings: Settings) -> Provider:
    from app.providers.oauth_builtin import BuiltinOAuthProvider

    return BuiltinOAuthProvider(token_url=f"{settings.oauth_issuer}/oauth/token")


def _railway(settings: Settings) -> Provider:
    from sqlalchemy.engine import make_url

    from app.providers.agent_config import AgentEndpoints
    from app.providers.container_railway import RailwayContainerProvider

    tenant_url = make_url(settings.tenant_database_url)
    return RailwayContainerProvider(
        api_url=settings.RAILWAY_API_URL,
        api_token=settings.RAILWAY_API_TOKEN,
        token_kind=settings.RAILWAY_TOKEN_KIND,
        project_id=settings.RAILWAY_PROJECT_ID,
        environment_id=settings.RAILWAY_ENVIRONMENT_ID,
        image=settings.RAILWAY_IMAGE,
        # The agent on Railway reaches these over the network: they must be public there.
        endpoints=AgentEndpoints(
            database_host=tenant_url.host or "127.0.0.1",
            database_port=tenant_url.port or 5432,
            database_name=tenant_url.database or "tenants",
            oauth_token_url=f"{settings.oauth_issuer}/oauth/token",
        ),
        poll_interval=settings.RAILWAY_POLL_INTERVAL,
        poll_max_interval=settings.RAILWAY_POLL_MAX_INTERVAL,
        deploy_timeout=settings.RAILWAY_DEPLOY_TIMEOUT,
        request_budget=settings.RAILWAY_REQUEST_BUDGET,
        max_retry_wait=settings.RAILWAY_MAX_RETRY_WAIT,
    )


def _container(settings: Settings) -> Provider:
    if settings.CONTAINER_RUNTIME == "railway":
        return _railway(settings)
    from sqlalchemy.engine import make_url

    tenant_url = make_url(settings.tenant_database_url)
    target: dict[str, Any] = {
        "database_host": tenant_url.host or "127.0.0.1",
        "database_port": tenant_url.port or 5432,
        "database_name": tenant_url.database or "tenants",
        "oauth_token_url": f"{settings.oauth_issuer}/oauth/token",
    }
    # Agents on this host start only once the kernel keeps them off Redis.
    fence = NetworkFence(redis_ports(settings.REDIS_URL))
    if settings.CONTAINER_RUNTIME == "docker":
        from app.providers.agent_image import agent_tag
        from app.providers.container_docker import DockerContainerProvider

        image = settings.AGENT_IMAGE or agent_tag()
        docker_runtime = DockerContainerProvider(
            docker_host=settings.DOCKER_HOST, image=image, instance=settings.RUN_DIR, **target
        )
        return FencedContainer(docker_runtime, fence)
    from app.providers.container_local import LocalContainerProvider

    return FencedContainer(LocalContainerProvider(run_dir=Path(settings.RUN_DIR), **target), fence)


def _rotator(database: PostgresTenantProvider, oauth: Provider, container: Provider) -> Provider:
    from app.providers.credential_rotation import CredentialRotator
    from app.providers.oauth_builtin import BuiltinOAuthProvider

    assert isinstance(oauth, BuiltinOAuthProvider)
    return CredentialRotator(database=database, oauth=oauth, container=container)


def _workflows(settings: Settings) -> Provider:
    from app.providers.workflows_n8n import N8nWorkflowProvider

    return N8nWorkflowProvider(base_url=settings.N8N_URL, api_key=settings.n8n_api_key)


def _gateway(settings: Settings) -> Provider:
    from app.providers.gateway_caddy import CaddyGatewayProvider

    return CaddyGatewayProvider(
        admin_url=settings.caddy_admin_url, public_url=settings.GATEWAY_PUBLIC_URL
    )


@cache
def providers(settings: Settings) -> dict[str, Provider]:
    """Provider name -> driver, fault-wrapped when (and only when) tests enable it."""
    database = PostgresTenantProvider(tenant_database_url=settings.tenant_database_url)
    oauth = _oauth(settings)
    container = _container(settings)
    built: dict[str, Provider] = {
        "validation": ConfigValidationProvider(ConfigRules.of(settings)),
        "database": database,
        "oauth": oauth,
        "container": container,
        "workflows": _workflows(settings),
        "gateway": _gateway(settings),
        "credentials": _rotator(database, oauth, container),
    }
    injector = FaultInjector(settings.REDIS_URL) if settings.FAULT_INJECTION_ENABLED else None
    if injector is not None:
        built = {name: FaultyProvider(p, injector) for name, p in built.items()}
    checked = COMPONENTS_CHECKED
    if settings.CONTAINER_RUNTIME == "railway":
        # Railway's state (image, sleeping, a deployment building) is not visible through
        # the gateway, so its own check joins the health checks and the drift sweep.
        checked = ("container", *checked)
    checker: Provider = DeploymentCheckProvider([built[name] for name in checked])
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


def tenant_database(settings: Settings) -> PostgresTenantProvider:
    """The tenant database driver itself, for work outside the saga (retention)."""
    database = providers(settings)["database"]
    inner = database.inner if isinstance(database, FaultyProvider) else database
    assert isinstance(inner, PostgresTenantProvider)
    return inner
