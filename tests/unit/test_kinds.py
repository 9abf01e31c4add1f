"""Each job kind's policy, and the job planning per kind: plain data, no stack."""

from __future__ import annotations

import pytest

from app.domain import plans, saga
from app.domain.kinds import (
    POLICIES,
    JobKind,
    OnStepFailure,
    Resume,
    StepAction,
    Undo,
    describe_step,
    policy_of,
)
from app.domain.states import (
    TERMINAL_STATES,
    DepartmentStatus,
    JobState,
    StepStatus,
    check_transition,
)

BUILDING = (JobKind.PROVISION, JobKind.UPDATE, JobKind.REPAIR)


def test_every_kind_has_one_policy_that_names_it() -> None:
    assert set(POLICIES) == set(JobKind)
    for kind, policy in POLICIES.items():
        assert policy.kind is kind
        assert policy_of(str(kind)) is policy
    with pytest.raises(ValueError):
        policy_of("upgrade")


@pytest.mark.parametrize("kind", BUILDING)
def test_building_kinds_create_with_a_deadline_and_roll_back(kind: JobKind) -> None:
    policy = POLICIES[kind]
    assert policy.action is StepAction.CREATE  # update and repair too: never "delete"
    assert policy.has_deadline and policy.cancellable
    assert policy.entry_state == JobState.PENDING
    assert policy.on_step_failure is OnStepFailure.ROLL_BACK
    assert policy.resume is Resume.RECHECK
    assert policy.department_on_success == DepartmentStatus.ACTIVE


def test_what_each_building_kind_undoes_and_leaves_behind() -> None:
    provision, update, repair = (POLICIES[k] for k in BUILDING)
    assert (provision.undo, update.undo, repair.undo) == (Undo.REMOVE, Undo.RESTORE, Undo.NOTHING)
    assert provision.records_config_version and update.records_config_version
    assert not repair.records_config_version
    assert provision.department_on_failure == DepartmentStatus.FAILED
    assert update.department_on_failure == DepartmentStatus.ACTIVE  # back on the old config
    assert update.department_left_behind == DepartmentStatus.DEGRADED
    assert repair.department_on_failure == DepartmentStatus.DEGRADED


def test_deprovisioning_removes_without_deadline_and_carries_on_past_failures() -> None:
    policy = POLICIES[JobKind.DEPROVISION]
    assert policy.action is StepAction.DELETE
    assert not policy.has_deadline and not policy.cancellable
    assert policy.entry_state == JobState.DEPROVISIONING
    # Its step statuses mean what they say: completed = removed, failed = left behind.
    assert (policy.success, policy.failure) == (StepStatus.COMPLETED, StepStatus.FAILED)
    assert policy.on_step_failure is OnStepFailure.CARRY_ON
    assert policy.undo is Undo.NOTHING and not policy.records_config_version
    assert policy.resume is Resume.REMAINING
    assert policy.department_on_success == DepartmentStatus.DEPROVISIONED


@pytest.mark.parametrize("kind", list(JobKind))
def test_each_kind_walks_only_legal_transitions_from_creation_to_its_ends(kind: JobKind) -> None:
    """PENDING -> entry state -> each planned step's state -> COMPLETED, and FAILED
    through the kind's failure path: all in the transition table."""
    policy = POLICIES[kind]
    state = JobState.PENDING
    for target in (policy.entry_state, *(policy.step_state(s) for s in _full_plan(kind))):
        check_transition(state, target)
        state = target
    check_transition(state, JobState.COMPLETED)
    if policy.on_step_failure is OnStepFailure.ROLL_BACK:
        check_transition(state, JobState.ROLLING_BACK)
        check_transition(JobState.ROLLING_BACK, JobState.FAILED)
    else:
        check_transition(state, JobState.FAILED)
    assert JobState.COMPLETED in TERMINAL_STATES


def _full_plan(kind: JobKind) -> tuple[saga.SagaStep, ...]:
    if kind is JobKind.DEPROVISION:
        return plans.plan_deprovision()
    if kind is JobKind.UPDATE:
        return plans.plan_update(plans.UPDATABLE_FIELDS)
    if kind is JobKind.REPAIR:
        return plans.plan_repair(plans.CHECK_STEPS)
    return plans.plan_provision()


@pytest.mark.parametrize("kind", list(JobKind))
def test_a_step_counts_as_finished_only_in_the_kinds_final_statuses(kind: JobKind) -> None:
    policy = POLICIES[kind]
    finished = {s for s in StepStatus if policy.is_finished(s)}
    expected = {policy.success}
    if policy.on_step_failure is OnStepFailure.CARRY_ON:
        expected.add(policy.failure)  # a removal left behind is not tried again
    assert finished == expected


def test_steps_are_described_by_what_the_job_does_with_them() -> None:
    database = saga.step("create_database")
    assert describe_step(StepAction.CREATE, database) == database.description
    assert describe_step(StepAction.DELETE, database) == "Removing create_database resources"
