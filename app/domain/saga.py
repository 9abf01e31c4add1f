"""The provisioning saga: an ordered list of steps, each with its compensation.

A step's forward action is its provider's ``create``; its compensation is the
same provider's ``delete``. Rollback walks this list backwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.states import JobState


@dataclass(frozen=True)
class SagaStep:
    name: str
    state: JobState
    provider: str
    component: str | None
    description: str
    compensation: str

    @property
    def has_resources(self) -> bool:
        """Validation steps create nothing, so there is nothing to undo."""
        return self.component is not None


SAGA: tuple[SagaStep, ...] = (
    SagaStep(
        "validate_config",
        JobState.VALIDATING,
        "validation",
        None,
        "Validating department configuration",
        "noop_validate_config",
    ),
    SagaStep(
        "create_database",
        JobState.CREATING_DATABASE,
        "database",
        "database",
        "Creating tenant database schema and role",
        "drop_database",
    ),
    SagaStep(
        "create_oauth",
        JobState.CREATING_OAUTH,
        "oauth",
        "oauth",
        "Registering OAuth client credentials",
        "delete_oauth",
    ),
    SagaStep(
        "deploy_container",
        JobState.DEPLOYING_CONTAINER,
        "container",
        "container",
        "Deploying the department container",
        "delete_container",
    ),
    SagaStep(
        "deploy_workflows",
        JobState.DEPLOYING_WORKFLOWS,
        "workflows",
        "n8n",
        "Deploying n8n workflows",
        "delete_workflows",
    ),
    SagaStep(
        "configure_gateway",
        JobState.CONFIGURING_GATEWAY,
        "gateway",
        "gateway",
        "Routing the department through the API gateway",
        "delete_gateway_route",
    ),
    SagaStep(
        "validate_deployment",
        JobState.VALIDATING_DEPLOYMENT,
        "deployment_check",
        None,
        "Health-checking the deployment",
        "noop_validate_deployment",
    ),
)

# Not part of provisioning: the one step of a credential rotation job.
ROTATE_CREDENTIALS = SagaStep(
    "rotate_credentials",
    JobState.ROTATING_CREDENTIALS,
    "credentials",
    None,  # replaces secrets in place; a failed rotation leaves the old ones working
    "Rotating the tenant database password and OAuth client secret",
    "noop_rotate_credentials",
)

STEPS_BY_NAME: dict[str, SagaStep] = {step.name: step for step in (*SAGA, ROTATE_CREDENTIALS)}
STEP_NAMES: tuple[str, ...] = tuple(step.name for step in SAGA)
RESOURCE_STEPS: tuple[SagaStep, ...] = tuple(step for step in SAGA if step.has_resources)


def step(name: str) -> SagaStep:
    return STEPS_BY_NAME[name]


def steps_after(name: str | None) -> tuple[SagaStep, ...]:
    """The steps still to run when ``name`` is the last one done (None: all)."""
    if name is None:
        return SAGA
    return SAGA[STEP_NAMES.index(name) + 1 :]
