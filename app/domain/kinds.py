"""Job kinds, and one frozen policy per kind saying what that kind of job means.

Everything that used to compare ``job.kind`` with a string (job creation, the
step runner, rollback, the sweeper, completion, the status views) reads the
policy instead, so a kind's behaviour is written down in one place and the
README's table is a transcription of ``POLICIES``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from app.domain.saga import SagaStep
from app.domain.states import DepartmentStatus, JobState, StepStatus


class JobKind(StrEnum):
    PROVISION = "provision"
    DEPROVISION = "deprovision"
    UPDATE = "update"
    REPAIR = "repair"
    ROTATE_CREDENTIALS = "rotate_credentials"


class StepAction(StrEnum):
    """What a job's steps do to their components; recorded on each step."""

    CREATE = "create"  # provider.create: converge the resource to the job's configuration
    DELETE = "delete"  # provider.delete: remove the resource


class OnStepFailure(StrEnum):
    ROLL_BACK = "roll back"  # stop going forward and undo (see Undo)
    CARRY_ON = "carry on"  # record what was left behind and go on with the next step


class Undo(StrEnum):
    """What a rollback does with the steps that started."""

    REMOVE = "remove what it created"  # provider.delete, reverse order
    RESTORE = "restore the previous configuration"  # provider.create with the old config
    NOTHING = "nothing"


class Resume(StrEnum):
    """Where the sweeper sets a stalled job going again."""

    RECHECK = "first step not done or no longer checking out"
    REMAINING = "first step not finished"


@dataclass(frozen=True)
class JobPolicy:
    kind: JobKind
    action: StepAction
    has_deadline: bool  # MAX_PROVISIONING_TIME applies (removing must finish whatever the clock)
    entry_state: JobState  # the state the job is created in
    success: StepStatus  # a step that did its work
    failure: StepStatus  # a step that could not
    on_step_failure: OnStepFailure
    undo: Undo
    records_config_version: bool  # success adds a configuration version to the history
    resume: Resume
    cancellable: bool
    department_while_running: DepartmentStatus | None  # None: the department keeps its status
    department_on_success: DepartmentStatus
    department_on_failure: DepartmentStatus  # the job failed and nothing was left behind
    department_left_behind: DepartmentStatus  # something could not be undone or removed
    # What the configuration history says changed besides the configuration itself.
    history_note: tuple[tuple[str, str], ...] = ()

    def step_state(self, step: SagaStep) -> JobState:
        """The job's state while ``step`` runs: building walks the saga's states,
        removing stays in its entry state."""
        return step.state if self.action is StepAction.CREATE else self.entry_state

    def is_finished(self, status: str) -> bool:
        """A step in this status will not run again for this job."""
        return status == self.success or (
            self.on_step_failure is OnStepFailure.CARRY_ON and status == self.failure
        )


_PROVISION = JobPolicy(
    kind=JobKind.PROVISION,
    action=StepAction.CREATE,
    has_deadline=True,
    entry_state=JobState.PENDING,
    success=StepStatus.COMPLETED,
    failure=StepStatus.FAILED,
    on_step_failure=OnStepFailure.ROLL_BACK,
    undo=Undo.REMOVE,
    records_config_version=True,
    resume=Resume.RECHECK,
    cancellable=True,
    department_while_running=DepartmentStatus.PROVISIONING,
    department_on_success=DepartmentStatus.ACTIVE,
    department_on_failure=DepartmentStatus.FAILED,
    department_left_behind=DepartmentStatus.FAILED,
)

POLICIES: dict[JobKind, JobPolicy] = {
    JobKind.PROVISION: _PROVISION,
    # Update and repair converge a running department like a provisioning does;
    # they differ in what a failure undoes and what the department is left as.
    JobKind.UPDATE: replace(
        _PROVISION,
        kind=JobKind.UPDATE,
        undo=Undo.RESTORE,
        department_while_running=None,
        department_on_failure=DepartmentStatus.ACTIVE,  # running its previous configuration
        department_left_behind=DepartmentStatus.DEGRADED,
    ),
    JobKind.REPAIR: replace(
        _PROVISION,
        kind=JobKind.REPAIR,
        undo=Undo.NOTHING,  # it only re-created what was missing: undoing would remove more
        records_config_version=False,
        department_while_running=None,
        department_on_failure=DepartmentStatus.DEGRADED,
        department_left_behind=DepartmentStatus.DEGRADED,
    ),
    JobKind.ROTATE_CREDENTIALS: replace(
        _PROVISION,
        kind=JobKind.ROTATE_CREDENTIALS,
        undo=Undo.NOTHING,  # until it completes the old credentials keep working
        history_note=(("credentials", "tenant database password and OAuth client secret rotated"),),
        department_while_running=None,
        department_on_failure=DepartmentStatus.ACTIVE,
        department_left_behind=DepartmentStatus.DEGRADED,
    ),
    JobKind.DEPROVISION: JobPolicy(
        kind=JobKind.DEPROVISION,
        action=StepAction.DELETE,
        has_deadline=False,
        entry_state=JobState.DEPROVISIONING,
        success=StepStatus.COMPLETED,  # removed
        failure=StepStatus.FAILED,  # could not be removed: left behind
        on_step_failure=OnStepFailure.CARRY_ON,
        undo=Undo.NOTHING,
        records_config_version=False,
        resume=Resume.REMAINING,
        cancellable=False,
        department_while_running=DepartmentStatus.DEPROVISIONING,
        department_on_success=DepartmentStatus.DEPROVISIONED,
        department_on_failure=DepartmentStatus.FAILED,
        department_left_behind=DepartmentStatus.FAILED,
    ),
}


def policy_of(kind: str) -> JobPolicy:
    """The policy of a stored job's kind (raises ValueError for an unknown kind)."""
    return POLICIES[JobKind(kind)]


def describe_step(action: StepAction, step: SagaStep) -> str:
    """What a step is doing, for logs and the status view."""
    if action is StepAction.DELETE:
        return f"Removing {step.name} resources"
    return step.description
