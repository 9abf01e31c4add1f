"""What the sweeper does with a stalled job: a decision over plain data.

The service (``services/sweeper.py``) gathers the job's state and step records,
asks the components whether completed steps still check out, and applies the
``Choice`` made here. Keeping the choice pure lets a unit test walk every kind
and state without a worker, a broker or a database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from app.domain.kinds import JobPolicy, Resume
from app.domain.plans import StepRecord, remaining_steps, steps_to_compensate
from app.domain.states import JobState, StepStatus


class SweepVerb(StrEnum):
    RESUME = "resume"  # send the job's own steps again, from ``steps[0]``
    TIME_OUT = "time_out"  # past its deadline: fail the running step, roll back
    ROLLBACK = "rollback"  # it was rolling back: run the remaining compensations


@dataclass(frozen=True)
class Choice:
    verb: SweepVerb
    steps: tuple[str, ...]  # in the order they are to be sent
    rerun: tuple[str, ...] = ()  # completed steps that must run again (reset to pending)


def first_step_to_run(
    policy: JobPolicy, records: Sequence[StepRecord], checks_out: Callable[[str], bool]
) -> str | None:
    """Where to resume: the first step not finished, or (for kinds that re-check)
    the first completed step whose resources no longer check out. ``checks_out``
    talks to the components, so it is called lazily and outside any transaction."""
    for record in records:
        if not policy.is_finished(record.status):
            return record.name
        if policy.resume is Resume.RECHECK and not checks_out(record.name):
            return record.name
    return None


def choose(
    policy: JobPolicy,
    state: JobState,
    records: Sequence[StepRecord],
    past_deadline: bool,
    resume_from: str | None,
) -> Choice:
    if state == JobState.ROLLING_BACK:
        return Choice(SweepVerb.ROLLBACK, tuple(steps_to_compensate(policy, records)))
    if policy.has_deadline and past_deadline:
        # The running step is failed first; it started, so it is compensated too.
        return Choice(SweepVerb.TIME_OUT, tuple(steps_to_compensate(policy, records)))
    return _resume(policy, records, resume_from)


def _resume(policy: JobPolicy, records: Sequence[StepRecord], resume_from: str | None) -> Choice:
    names = [r.name for r in records]
    if policy.resume is Resume.REMAINING:
        remaining = remaining_steps(policy, records)
        return Choice(SweepVerb.RESUME, tuple(remaining or names[-1:]))
    # Nothing left to run can only mean the last step's result was lost: redo it.
    start = names.index(resume_from) if resume_from in names else len(names) - 1
    rerun = tuple(r.name for r in records[start:] if r.status == StepStatus.COMPLETED)
    return Choice(SweepVerb.RESUME, tuple(names[start:]), rerun)
