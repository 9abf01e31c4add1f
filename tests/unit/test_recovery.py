"""The sweeper's choice for every kind and state, over plain step records."""

from __future__ import annotations

import itertools

import pytest

from app.domain import plans, saga
from app.domain.kinds import POLICIES, JobKind, OnStepFailure, Undo
from app.domain.plans import StepSnapshot
from app.domain.recovery import Choice, SweepVerb, choose, first_step_to_run
from app.domain.states import FORWARD_STATES, JobState, StepStatus

C, F, P, RUN, CF = (
    StepStatus.COMPLETED,
    StepStatus.FAILED,
    StepStatus.PENDING,
    StepStatus.IN_PROGRESS,
    StepStatus.COMPENSATION_FAILED,
)
UPDATE_PLAN = [s.name for s in plans.plan_update(plans.UPDATABLE_FIELDS)]


def job(statuses: list[str], steps: list[str] | None = None) -> list[StepSnapshot]:
    names = steps or list(saga.STEP_NAMES)
    return [StepSnapshot(n, s) for n, s in zip(names, statuses, strict=True)]


def always(name: str) -> bool:
    return True


def never_asked(name: str) -> bool:
    raise AssertionError(f"{name} must not be checked")


def sweep(
    kind: JobKind,
    state: JobState,
    records: list[StepSnapshot],
    past_deadline: bool = False,
    checks_out: object = always,
) -> Choice:
    policy = POLICIES[kind]
    resume_from = first_step_to_run(policy, records, checks_out)  # type: ignore[arg-type]
    return choose(policy, state, records, past_deadline, resume_from)


# --- the bug: a middle step of an update or repair job was never re-run ------------


@pytest.mark.parametrize("kind", [JobKind.UPDATE, JobKind.REPAIR])
@pytest.mark.parametrize("killed", range(len(UPDATE_PLAN)))
def test_an_update_or_repair_resumes_at_the_step_its_worker_died_in(
    kind: JobKind, killed: int
) -> None:
    statuses = [C] * killed + [RUN] + [P] * (len(UPDATE_PLAN) - killed - 1)
    records = job(statuses, UPDATE_PLAN)
    state = saga.step(UPDATE_PLAN[killed]).state

    choice = sweep(kind, state, records)

    assert choice == Choice(SweepVerb.RESUME, tuple(UPDATE_PLAN[killed:]))


# --- building kinds ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "state"),
    list(itertools.product([JobKind.PROVISION, JobKind.UPDATE, JobKind.REPAIR], FORWARD_STATES)),
)
def test_a_building_job_in_any_forward_state_resumes_or_times_out(
    kind: JobKind, state: JobState
) -> None:
    records = job([C, C, RUN, P, P, P, P])
    assert sweep(kind, state, records).steps == tuple(saga.STEP_NAMES[2:])
    timed_out = sweep(kind, state, records, past_deadline=True)
    assert timed_out.verb is SweepVerb.TIME_OUT
    expected = {
        Undo.REMOVE: ("create_oauth", "create_database"),
        Undo.RESTORE: ("create_database", "create_oauth"),
        Undo.NOTHING: (),
    }[POLICIES[kind].undo]
    assert timed_out.steps == expected


def test_a_queued_job_that_never_started_is_sent_whole() -> None:
    assert sweep(JobKind.PROVISION, JobState.PENDING, job([P] * 7)).steps == saga.STEP_NAMES


def test_a_completed_step_whose_resources_vanished_is_run_again_with_those_after_it() -> None:
    records = job([C, C, C, C, RUN, P, P])
    choice = sweep(
        JobKind.PROVISION,
        JobState.DEPLOYING_WORKFLOWS,
        records,
        checks_out=lambda name: name != "create_oauth",
    )
    assert choice.steps == tuple(saga.STEP_NAMES[2:])
    assert choice.rerun == ("create_oauth", "deploy_container")


def test_nothing_left_to_run_means_the_last_result_was_lost_so_it_is_redone() -> None:
    choice = sweep(JobKind.UPDATE, JobState.VALIDATING_DEPLOYMENT, job([C] * 7))
    assert choice == Choice(SweepVerb.RESUME, ("validate_deployment",), ("validate_deployment",))


@pytest.mark.parametrize("kind", list(JobKind))
def test_a_rollback_in_progress_is_finished_whatever_the_kind(kind: JobKind) -> None:
    records = job([C, C, CF, StepStatus.ROLLED_BACK, F, P, P])
    choice = sweep(kind, JobState.ROLLING_BACK, records, past_deadline=True)
    assert choice.verb is SweepVerb.ROLLBACK
    undo = POLICIES[kind].undo
    # A compensation that failed is listed but skipped by its task (it is final).
    if undo is Undo.REMOVE:
        assert choice.steps == ("deploy_workflows", "create_oauth", "create_database")
    elif undo is Undo.RESTORE:
        assert choice.steps == ("create_database", "create_oauth", "deploy_workflows")
    else:
        assert choice.steps == ()


# --- deprovisioning --------------------------------------------------------------------

REMOVALS = [s.name for s in plans.plan_deprovision()]


@pytest.mark.parametrize("killed", range(len(REMOVALS)))
@pytest.mark.parametrize("past_deadline", [False, True])
def test_a_deprovisioning_resumes_its_unfinished_removals_and_never_times_out(
    killed: int, past_deadline: bool
) -> None:
    statuses = [C] * killed + [RUN] + [P] * (len(REMOVALS) - killed - 1)
    if killed:
        statuses[0] = F  # left behind: final, not tried again
    records = job(statuses, REMOVALS)

    choice = sweep(
        JobKind.DEPROVISION, JobState.DEPROVISIONING, records, past_deadline, never_asked
    )

    assert choice == Choice(SweepVerb.RESUME, tuple(REMOVALS[killed:]))


def test_only_deprovisioning_carries_on_past_a_failed_step() -> None:
    carrying_on = [k for k, p in POLICIES.items() if p.on_step_failure is OnStepFailure.CARRY_ON]
    assert carrying_on == [JobKind.DEPROVISION]
