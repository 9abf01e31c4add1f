"""Which saga steps a job runs, per kind, and which of them a rollback undoes.

Plain functions over plain data (step names and statuses), so each decision is
unit-tested without a database. Every provider's ``create`` converges a
resource to the configuration it is given, so an update or a repair re-runs
only the steps whose resources depend on what changed or went missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from app.domain import saga
from app.domain.department import AGENT_CHECK
from app.domain.kinds import JobPolicy, Undo
from app.domain.states import STARTED_STEP_STATUSES

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
    AGENT_CHECK: ("deploy_container", "configure_gateway"),
    "container_process": ("deploy_container",),  # checked on the Railway runtime only
    "n8n_workflows": ("deploy_workflows",),
    "gateway_route": ("configure_gateway",),
}


class StepRecord(Protocol):
    """What these decisions read of a job's step: a ``JobStep`` row or a ``StepSnapshot``."""

    @property
    def name(self) -> str: ...

    @property
    def status(self) -> str: ...


@dataclass(frozen=True)
class StepSnapshot:
    name: str
    status: str


def plan_provision() -> tuple[saga.SagaStep, ...]:
    return saga.SAGA


def plan_deprovision() -> tuple[saga.SagaStep, ...]:
    """Every resource step, last created first removed."""
    return tuple(reversed(saga.RESOURCE_STEPS))


def plan_rotation() -> tuple[saga.SagaStep, ...]:
    """New credentials handed to the agent, then the usual health checks."""
    return (saga.ROTATE_CREDENTIALS, saga.step("validate_deployment"))


def plan_update(changed_fields: Iterable[str]) -> tuple[saga.SagaStep, ...]:
    return _with_checks(name for field in changed_fields for name in FIELD_STEPS[field])


def plan_repair(failing_checks: Iterable[str]) -> tuple[saga.SagaStep, ...]:
    return _with_checks(name for check in failing_checks for name in CHECK_STEPS.get(check, ()))


def _with_checks(names: Iterable[str]) -> tuple[saga.SagaStep, ...]:
    """Saga order; a redeployed container has a new address, so its route follows."""
    wanted = set(names)
    if "deploy_container" in wanted:
        wanted.add("configure_gateway")
    wanted |= {"validate_config", "validate_deployment"}
    return tuple(step for step in saga.SAGA if step.name in wanted)


def steps_to_compensate(policy: JobPolicy, records: Sequence[StepRecord]) -> list[str]:
    """What a rollback of this job undoes: only resource steps that started."""
    started = [
        r.name
        for r in records
        if saga.step(r.name).has_resources and r.status in STARTED_STEP_STATUSES
    ]
    if policy.undo is Undo.REMOVE:
        return list(reversed(started))
    if policy.undo is Undo.RESTORE:
        return _restore_order(started, {r.name for r in records})
    return []


def _restore_order(started: list[str], job_steps: set[str]) -> list[str]:
    """Restoring re-applies the previous configuration, itself a forward
    convergence: forward order, and a restarted container needs its route again."""
    if "deploy_container" in started and "configure_gateway" in job_steps:
        return [n for n in started if n != "configure_gateway"] + ["configure_gateway"]
    return started


def remaining_steps(policy: JobPolicy, records: Sequence[StepRecord]) -> list[str]:
    """The job's steps that will still run, in order."""
    return [r.name for r in records if not policy.is_finished(r.status)]


def successor(records: Sequence[StepRecord], name: str) -> StepRecord | None:
    """The step after ``name`` in this job (update and repair jobs run a subset)."""
    names = [r.name for r in records]
    index = names.index(name) + 1
    return records[index] if index < len(records) else None
