"""Properties of the state machine and the rollback order, over generated inputs.

These run on in-memory model objects (no database): ``transition`` only adds
rows to an unbound session, and ``steps_to_compensate`` only reads plain step
records, so hypothesis can try thousands of histories in a second or two.
"""

from __future__ import annotations

import os
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from app.domain import saga
from app.domain.kinds import POLICIES, JobKind
from app.domain.plans import StepSnapshot, remaining_steps, steps_to_compensate
from app.domain.services.journal import transition
from app.domain.states import (
    STARTED_STEP_STATUSES,
    TERMINAL_STATES,
    TRANSITIONS,
    IllegalTransition,
    JobState,
    StepStatus,
)
from app.persistence.models import Department, JobStep, ProvisioningJob

# `make fuzz` raises this; the default keeps the unit run around a second.
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "300"))
PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

job_states = st.sampled_from(list(JobState))
step_statuses = st.sampled_from(list(StepStatus))


def _job(
    kind: str, statuses: list[StepStatus], state: JobState = JobState.PENDING
) -> ProvisioningJob:
    department = Department(
        id=uuid.uuid4(),
        department_id="zprop",
        department_name="P",
        status="PROVISIONING",
        config={},
        resources={},
    )
    job = ProvisioningJob(
        id=uuid.uuid4(), kind=kind, state=state, generation=0, config={}, department=department
    )
    job.steps = [
        JobStep(position=i, name=s.name, action="create", status=status, attempts=0)
        for i, (s, status) in enumerate(zip(saga.SAGA, statuses, strict=True))
    ]
    return job


@PROPERTY_SETTINGS
@given(start=job_states, targets=st.lists(job_states, max_size=25))
def test_random_event_sequences_only_ever_take_transitions_in_the_table(
    start: JobState, targets: list[JobState]
) -> None:
    job = _job("provision", [StepStatus.PENDING] * len(saga.SAGA), start)
    session = Session()  # unbound: transition() only adds rows, nothing is flushed
    for target in targets:
        before = JobState(job.state)
        try:
            transition(session, job, target)
        except IllegalTransition:
            # Refused moves must leave the state exactly as it was.
            assert job.state == before
            assert target != before and target not in TRANSITIONS[before]
            continue
        assert job.state == target
        assert target == before or target in TRANSITIONS[before]
        if before in TERMINAL_STATES:
            assert target == before  # terminal states are absorbing


@PROPERTY_SETTINGS
@given(path=st.lists(job_states, min_size=1, max_size=25))
def test_every_state_reachable_by_legal_moves_can_still_end(path: list[JobState]) -> None:
    """Whatever legal history a job has, a terminal state is still reachable (no traps)."""
    state = JobState.PENDING
    for target in path:
        if target in TRANSITIONS[state]:
            state = target
    seen, frontier = {state}, [state]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen & TERMINAL_STATES


def _records(statuses: list[StepStatus]) -> list[StepSnapshot]:
    return [StepSnapshot(s.name, status) for s, status in zip(saga.SAGA, statuses, strict=True)]


@PROPERTY_SETTINGS
@given(failure_index=st.integers(0, len(saga.SAGA) - 1), acted=st.booleans())
def test_rollback_undoes_exactly_the_started_steps_in_reverse_order(
    failure_index: int, acted: bool
) -> None:
    """A failure at any step: earlier steps completed, the failing one failed
    (or still in progress when its worker died), later ones never started."""
    failing = StepStatus.FAILED if acted else StepStatus.IN_PROGRESS
    statuses = (
        [StepStatus.COMPLETED] * failure_index
        + [failing]
        + [StepStatus.PENDING] * (len(saga.SAGA) - failure_index - 1)
    )
    undo = steps_to_compensate(POLICIES[JobKind.PROVISION], _records(statuses))

    started = [s.name for s in saga.SAGA[: failure_index + 1] if s.has_resources]
    assert undo == list(reversed(started))


@PROPERTY_SETTINGS
@given(statuses=st.lists(step_statuses, min_size=len(saga.SAGA), max_size=len(saga.SAGA)))
def test_compensations_are_a_reverse_ordered_subset_of_the_resource_steps(
    statuses: list[StepStatus],
) -> None:
    """Any mix of step records (e.g. a rollback resumed by the sweeper after a crash)."""
    undo = steps_to_compensate(POLICIES[JobKind.PROVISION], _records(statuses))
    order = [s.name for s in reversed(saga.RESOURCE_STEPS)]
    assert undo == [name for name in order if name in undo]  # strictly reverse saga order
    by_name = dict(zip(saga.STEP_NAMES, statuses, strict=True))
    for name in order:
        assert (name in undo) == (by_name[name] in STARTED_STEP_STATUSES), (name, by_name[name])
    # Steps that never create anything are never compensated.
    assert not set(undo) & {s.name for s in saga.SAGA if not s.has_resources}


@PROPERTY_SETTINGS
@given(
    statuses=st.lists(
        step_statuses, min_size=len(saga.RESOURCE_STEPS), max_size=len(saga.RESOURCE_STEPS)
    )
)
def test_a_deprovisioning_resumes_with_exactly_its_unfinished_removals_in_order(
    statuses: list[StepStatus],
) -> None:
    """Removed (completed) and left-behind (failed) steps are final; the rest run, in order."""
    records = [
        StepSnapshot(s.name, status)
        for s, status in zip(reversed(saga.RESOURCE_STEPS), statuses, strict=True)
    ]
    remaining = remaining_steps(POLICIES[JobKind.DEPROVISION], records)
    final = (StepStatus.COMPLETED, StepStatus.FAILED)
    assert remaining == [r.name for r in records if r.status not in final]


def test_a_rollback_resumed_twice_never_repeats_a_finished_compensation() -> None:
    """After every resource step is rolled back there is nothing left to undo."""
    statuses = [
        StepStatus.COMPLETED if not s.has_resources else StepStatus.ROLLED_BACK for s in saga.SAGA
    ]
    assert steps_to_compensate(POLICIES[JobKind.PROVISION], _records(statuses)) == []
