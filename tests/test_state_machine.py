"""The transition table is the only authority on how a job's state may move."""

from __future__ import annotations

import itertools

import pytest

from app.domain import saga
from app.domain.states import (
    FORWARD_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    IllegalTransition,
    JobState,
    check_transition,
)


def test_every_state_has_a_row_and_terminal_states_lead_nowhere() -> None:
    assert set(TRANSITIONS) == set(JobState)
    for state in TERMINAL_STATES:
        assert TRANSITIONS[state] == frozenset()


@pytest.mark.parametrize(("current", "target"), list(itertools.product(JobState, JobState)))
def test_check_transition_allows_exactly_the_table(current: JobState, target: JobState) -> None:
    allowed = current == target or target in TRANSITIONS[current]
    if allowed:
        check_transition(current, target)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(current, target)


def test_forward_states_follow_the_saga_and_never_go_backwards() -> None:
    assert [s.state for s in saga.SAGA] == list(FORWARD_STATES[1:])
    for earlier, later in itertools.combinations(FORWARD_STATES, 2):
        assert later in TRANSITIONS[earlier]
        assert earlier not in TRANSITIONS[later]


def test_failure_and_cancel_go_through_rolling_back() -> None:
    for state in FORWARD_STATES[1:]:
        assert JobState.FAILED not in TRANSITIONS[state]
        assert JobState.CANCELLED not in TRANSITIONS[state]
        assert JobState.ROLLING_BACK in TRANSITIONS[state]
    assert TRANSITIONS[JobState.ROLLING_BACK] == {JobState.FAILED, JobState.CANCELLED}


def test_compensations_exist_for_every_resource_step_in_reverse() -> None:
    names = [s.name for s in saga.RESOURCE_STEPS]
    assert names == [
        "create_database",
        "create_oauth",
        "deploy_container",
        "deploy_workflows",
        "configure_gateway",
    ]
    assert len({s.compensation for s in saga.SAGA}) == len(saga.SAGA)
