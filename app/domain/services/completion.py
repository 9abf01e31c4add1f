"""How a job ends: after its last step, or after its rollback.

What the department becomes, and whether the history gains a configuration
version, come from the job's policy.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.domain.kinds import JobPolicy, policy_of
from app.domain.services.journal import journal, transition
from app.domain.states import DepartmentStatus, JobState
from app.persistence.models import Department, DepartmentConfigVersion, ProvisioningJob, utcnow


def finish_job(session: Session, job: ProvisioningJob) -> None:
    """The last step has been recorded: the job completed, unless a step it
    carried on past (a removal that could not succeed) left something behind."""
    policy = policy_of(job.kind)
    left_behind = [s.name for s in job.steps if s.status == policy.failure]
    if left_behind:
        _fail_leaving(session, job, policy, left_behind)
        return
    transition(session, job, JobState.COMPLETED)
    job.completed_at = utcnow()
    department = job.department
    if policy.records_config_version:
        record_config_version(session, department, job)
    department.status = policy.department_on_success
    department.drift = None
    # Built steps recorded their outputs, removed ones erased them: read the URLs back.
    resources = department.resources or {}
    department.deployment_url = resources.get("configure_gateway", {}).get("url")
    department.container_url = resources.get("deploy_container", {}).get("url")
    ended = (
        "deprovisioned"
        if department.status == DepartmentStatus.DEPROVISIONED
        else f"is {department.status}"
    )
    journal(session, job, "INFO", f"department {department.department_id} {ended}")


def _fail_leaving(
    session: Session, job: ProvisioningJob, policy: JobPolicy, left_behind: list[str]
) -> None:
    transition(session, job, JobState.FAILED)
    job.completed_at = utcnow()
    job.department.status = policy.department_left_behind
    job.error = {
        "step": left_behind[0],
        "attempt": None,
        "message": f"resources left behind: {', '.join(left_behind)}",
    }
    journal(session, job, "ERROR", f"job FAILED; left behind: {', '.join(left_behind)}")


def settle_rollback(session: Session, job: ProvisioningJob, left_behind: list[str]) -> None:
    """Every compensation has run: FAILED (or CANCELLED), and the department is
    whatever the policy says a failed job of this kind leaves it as."""
    policy = policy_of(job.kind)
    job.completed_at = utcnow()
    final = JobState.CANCELLED if job.cancel_requested_at else JobState.FAILED
    transition(session, job, final)
    job.department.status = (
        policy.department_left_behind if left_behind else policy.department_on_failure
    )
    summary = f"left behind: {', '.join(left_behind)}" if left_behind else "nothing left behind"
    journal(session, job, "ERROR" if left_behind else "INFO", f"job {final}; {summary}")


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    keys = sorted(set(old) | set(new))
    return {k: {"from": old.get(k), "to": new.get(k)} for k in keys if old.get(k) != new.get(k)}


def record_config_version(session: Session, department: Department, job: ProvisioningJob) -> None:
    previous = job.previous_config or {}
    department.config = dict(job.config)
    department.config_version += 1
    session.add(
        DepartmentConfigVersion(
            department_pk=department.id,
            version=department.config_version,
            config=dict(job.config),
            diff={
                **config_diff(previous, job.config),
                **{
                    name: {"from": None, "to": text}
                    for name, text in policy_of(job.kind).history_note
                },
            },
            actor=job.requested_by,
            job_id=job.id,
        )
    )
