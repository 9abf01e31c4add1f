"""Which saga steps an update or a repair has to run.

Every provider's ``create`` converges a resource to the configuration it is
given, so applying a change means re-running only the steps whose resources
depend on the changed fields, then the deployment check.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.domain import saga

# Configuration field -> the steps whose resources are rendered from it.
FIELD_STEPS: dict[str, tuple[str, ...]] = {
    "departmentName": ("deploy_container", "deploy_workflows"),
    "workflows": ("deploy_workflows",),
    "enabledTools": ("create_oauth", "deploy_container"),
    "resources": ("deploy_container",),
    "dataRetention": ("create_database",),
    "customConfig": ("deploy_container",),
    "callbackUrl": (),
}
UPDATABLE_FIELDS: tuple[str, ...] = tuple(FIELD_STEPS)

# Failing health check -> the steps that re-create what it found missing.
CHECK_STEPS: dict[str, tuple[str, ...]] = {
    "database_connectivity": ("create_database",),
    "oauth_credentials": ("create_oauth",),
    "railway_agent": ("deploy_container", "configure_gateway"),
    "container_process": ("deploy_container",),  # checked on the Railway runtime only
    "n8n_workflows": ("deploy_workflows",),
    "gateway_route": ("configure_gateway",),
}


def _with_checks(names: Iterable[str]) -> tuple[saga.SagaStep, ...]:
    """Saga order; a redeployed container has a new address, so its route follows."""
    wanted = set(names)
    if "deploy_container" in wanted:
        wanted.add("configure_gateway")
    wanted |= {"validate_config", "validate_deployment"}
    return tuple(step for step in saga.SAGA if step.name in wanted)


def steps_for_update(changed_fields: Iterable[str]) -> tuple[saga.SagaStep, ...]:
    return _with_checks(name for field in changed_fields for name in FIELD_STEPS[field])


def steps_for_repair(failing_checks: Iterable[str]) -> tuple[saga.SagaStep, ...]:
    return _with_checks(name for check in failing_checks for name in CHECK_STEPS.get(check, ()))
