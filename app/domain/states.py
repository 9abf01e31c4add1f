"""The job state machine, as data.

A transition not listed in ``TRANSITIONS`` raises ``IllegalTransition`` and is
never written, so the stored state always tells a true story.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    PENDING = "PENDING"
    VALIDATING = "VALIDATING"
    CREATING_DATABASE = "CREATING_DATABASE"
    CREATING_OAUTH = "CREATING_OAUTH"
    DEPLOYING_CONTAINER = "DEPLOYING_CONTAINER"
    DEPLOYING_WORKFLOWS = "DEPLOYING_WORKFLOWS"
    CONFIGURING_GATEWAY = "CONFIGURING_GATEWAY"
    VALIDATING_DEPLOYMENT = "VALIDATING_DEPLOYMENT"
    COMPLETED = "COMPLETED"
    ROLLING_BACK = "ROLLING_BACK"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    DEPROVISIONING = "DEPROVISIONING"
    ROTATING_CREDENTIALS = "ROTATING_CREDENTIALS"


FORWARD_STATES: tuple[JobState, ...] = (
    JobState.PENDING,
    JobState.VALIDATING,
    JobState.CREATING_DATABASE,
    JobState.CREATING_OAUTH,
    JobState.DEPLOYING_CONTAINER,
    JobState.DEPLOYING_WORKFLOWS,
    JobState.CONFIGURING_GATEWAY,
    JobState.VALIDATING_DEPLOYMENT,
)
TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})


def _forward_table() -> dict[JobState, frozenset[JobState]]:
    """Each forward state may advance to a later one (a resumed job skips
    steps whose resources still check out) or give up and roll back."""
    table: dict[JobState, frozenset[JobState]] = {}
    for index, state in enumerate(FORWARD_STATES):
        later = (*FORWARD_STATES[index + 1 :], JobState.COMPLETED)
        table[state] = frozenset((*later, JobState.ROLLING_BACK))
    table[JobState.PENDING] |= {
        JobState.DEPROVISIONING,
        JobState.FAILED,
        JobState.ROTATING_CREDENTIALS,
    }
    # Credential rotation is not a provisioning step: it has a branch of its own.
    table[JobState.ROTATING_CREDENTIALS] = frozenset(
        {JobState.VALIDATING_DEPLOYMENT, JobState.COMPLETED, JobState.ROLLING_BACK}
    )
    return table


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    **_forward_table(),
    # A cancelled job rolls back like a failed one, then says it was cancelled.
    JobState.ROLLING_BACK: frozenset({JobState.FAILED, JobState.CANCELLED}),
    JobState.DEPROVISIONING: frozenset({JobState.COMPLETED, JobState.FAILED}),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, current: JobState, target: JobState) -> None:
        super().__init__(f"illegal job transition {current} -> {target}")
        self.current = current
        self.target = target


def check_transition(current: JobState, target: JobState) -> None:
    """Raises unless ``current -> target`` is in the table (staying put is allowed)."""
    if current != target and target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)


class DepartmentStatus(StrEnum):
    PROVISIONING = "PROVISIONING"
    ACTIVE = "ACTIVE"
    FAILED = "FAILED"
    DEGRADED = "DEGRADED"  # was ACTIVE; some of its resources stopped checking out
    DEPROVISIONING = "DEPROVISIONING"
    DEPROVISIONED = "DEPROVISIONED"


class StepStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    COMPENSATING = "compensating"
    ROLLED_BACK = "rolled_back"
    COMPENSATION_FAILED = "compensation_failed"
    SKIPPED = "skipped"


# Steps whose resources may exist, partly or wholly, and so need compensating.
STARTED_STEP_STATUSES = frozenset(
    {
        StepStatus.IN_PROGRESS,
        StepStatus.COMPLETED,
        StepStatus.FAILED,
        StepStatus.COMPENSATING,
        StepStatus.COMPENSATION_FAILED,
    }
)
