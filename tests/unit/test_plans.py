"""Which steps each kind of job plans, and which a rollback undoes."""

from __future__ import annotations

import pytest

from app.domain import plans, saga
from app.domain.kinds import POLICIES, JobKind
from app.domain.plans import StepSnapshot
from app.domain.states import StepStatus

C, F, P, RUN, RB = (
    StepStatus.COMPLETED,
    StepStatus.FAILED,
    StepStatus.PENDING,
    StepStatus.IN_PROGRESS,
    StepStatus.ROLLED_BACK,
)


def names(steps: tuple[saga.SagaStep, ...]) -> list[str]:
    return [s.name for s in steps]


def records(*pairs: tuple[str, str]) -> list[StepSnapshot]:
    return [StepSnapshot(name, status) for name, status in pairs]


def test_provisioning_plans_the_whole_saga_and_deprovisioning_its_resources_backwards() -> None:
    assert plans.plan_provision() == saga.SAGA
    assert names(plans.plan_deprovision()) == [
        "configure_gateway",
        "deploy_workflows",
        "deploy_container",
        "create_oauth",
        "create_database",
    ]


@pytest.mark.parametrize(
    ("fields", "middle"),
    [
        (["workflows"], ["deploy_workflows"]),
        (["dataRetention"], ["create_database"]),
        (["enabledTools"], ["create_oauth", "deploy_container", "configure_gateway"]),
        (["resources"], ["deploy_container", "configure_gateway"]),
        (["departmentName"], ["deploy_container", "deploy_workflows", "configure_gateway"]),
        (["callbackUrl"], []),
        (["workflows", "dataRetention"], ["create_database", "deploy_workflows"]),
    ],
)
def test_an_update_plans_only_the_steps_its_fields_feed_in_saga_order(
    fields: list[str], middle: list[str]
) -> None:
    assert names(plans.plan_update(fields)) == ["validate_config", *middle, "validate_deployment"]


@pytest.mark.parametrize(
    ("checks", "middle"),
    [
        (["database_connectivity"], ["create_database"]),
        (["oauth_credentials"], ["create_oauth"]),
        (["railway_agent"], ["deploy_container", "configure_gateway"]),
        (["n8n_workflows"], ["deploy_workflows"]),
        (["gateway_route"], ["configure_gateway"]),
        (["not_a_check"], []),
        (list(plans.CHECK_STEPS), [s.name for s in saga.RESOURCE_STEPS]),
    ],
)
def test_a_repair_plans_only_what_the_failing_checks_need(
    checks: list[str], middle: list[str]
) -> None:
    assert names(plans.plan_repair(checks)) == ["validate_config", *middle, "validate_deployment"]


def test_a_provisioning_rollback_removes_what_started_in_reverse() -> None:
    job = records(
        ("validate_config", C),
        ("create_database", C),
        ("create_oauth", C),
        ("deploy_container", F),
        ("deploy_workflows", P),
        ("configure_gateway", P),
        ("validate_deployment", P),
    )
    undo = plans.steps_to_compensate(POLICIES[JobKind.PROVISION], job)
    assert undo == ["deploy_container", "create_oauth", "create_database"]


def test_an_update_rollback_restores_in_forward_order_with_the_route_last() -> None:
    job = records(
        ("validate_config", C),
        ("create_oauth", C),
        ("deploy_container", C),
        ("configure_gateway", C),
        ("validate_deployment", F),
    )
    undo = plans.steps_to_compensate(POLICIES[JobKind.UPDATE], job)
    assert undo == ["create_oauth", "deploy_container", "configure_gateway"]
    # The container restarted but the route step never ran: it must follow anyway.
    job = records(
        ("validate_config", C),
        ("deploy_container", RUN),
        ("configure_gateway", P),
        ("validate_deployment", P),
    )
    undo = plans.steps_to_compensate(POLICIES[JobKind.UPDATE], job)
    assert undo == ["deploy_container", "configure_gateway"]


def test_a_repair_and_a_deprovisioning_undo_nothing() -> None:
    job = records(("validate_config", C), ("create_database", F), ("validate_deployment", P))
    assert plans.steps_to_compensate(POLICIES[JobKind.REPAIR], job) == []
    removal = records(("configure_gateway", C), ("deploy_workflows", F))
    assert plans.steps_to_compensate(POLICIES[JobKind.DEPROVISION], removal) == []


def test_finished_compensations_are_not_repeated() -> None:
    job = records(("validate_config", C), ("create_database", RB), ("create_oauth", F))
    assert plans.steps_to_compensate(POLICIES[JobKind.PROVISION], job) == ["create_oauth"]


def test_successor_is_the_next_step_of_this_job_not_of_the_saga() -> None:
    job = records(("validate_config", C), ("deploy_workflows", C), ("validate_deployment", P))
    successor = plans.successor(job, "deploy_workflows")
    assert successor is not None and successor.name == "validate_deployment"
    assert plans.successor(job, "validate_deployment") is None
