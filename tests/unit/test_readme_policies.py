"""The README's job-kind table is a transcription of ``POLICIES``: it cannot drift."""

from __future__ import annotations

from pathlib import Path

from app.domain.kinds import POLICIES, JobKind, JobPolicy

README = Path(__file__).resolve().parents[2] / "README.md"
PLANS = {
    JobKind.PROVISION: "every step",
    JobKind.UPDATE: "the steps the changed fields feed",
    JobKind.REPAIR: "the steps the failing checks need",
    JobKind.DEPROVISION: "every resource step, last first",
    JobKind.ROTATE_CREDENTIALS: "`rotate_credentials`, then the health checks",
}
HEADER = (
    "| kind | runs | each step | deadline | starts in | step done / failed | a failed step "
    "| rollback | config version | sweeper resumes at "
    "| department: running / done / failed / left behind |"
)


def row(policy: JobPolicy) -> str:
    department = " / ".join(
        str(status or "unchanged")
        for status in (
            policy.department_while_running,
            policy.department_on_success,
            policy.department_on_failure,
            policy.department_left_behind,
        )
    )
    cells = (
        f"`{policy.kind}`",
        PLANS[policy.kind],
        f"`{policy.action}`",
        "yes" if policy.has_deadline else "no",
        f"`{policy.entry_state}`",
        f"`{policy.success}` / `{policy.failure}`",
        str(policy.on_step_failure),
        str(policy.undo),
        "yes" if policy.records_config_version else "no",
        str(policy.resume),
        department,
    )
    return "| " + " | ".join(cells) + " |"


def policy_table() -> str:
    separator = "|" + "---|" * HEADER.count(" | ") + "---|"
    return "\n".join([HEADER, separator, *(row(p) for p in POLICIES.values())])


def test_readme_shows_every_kinds_policy_in_one_table() -> None:
    assert set(PLANS) == set(POLICIES)
    assert policy_table() in README.read_text(), (
        "README is out of date: paste `python -m tests.unit.test_readme_policies`"
    )


if __name__ == "__main__":
    print(policy_table())
