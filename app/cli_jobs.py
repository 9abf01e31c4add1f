"""Lifecycle verbs of `provisioning`: deprovision, update, repair, health,
history, drift. Same exit codes and --json as the rest (app/cli_support.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import click

from app import config
from app.cli import _audit, _cli_actor, echo_lines, provisioning_cli
from app.cli_support import (
    Exit,
    emit,
    fail,
    finish_submission,
    json_option,
    require_redis,
    wait_for,
    wait_options,
)
from app.domain.services import lifecycle, provisioning, queries


@provisioning_cli.command("deprovision")
@click.argument("department_id")
@click.option("--confirm", default=None, help="The departmentId again, when confirmation is on.")
@wait_options
@json_option
def deprovision_command(
    department_id: str, confirm: str | None, wait: bool, timeout: float | None, as_json: bool
) -> None:
    """Remove every resource of DEPARTMENT_ID in reverse order, as a tracked job."""
    require_redis()
    try:
        submission = provisioning.request_deprovision(
            department_id, _cli_actor(), settings=config.current(), confirm=confirm
        )
    except provisioning.ConfirmationRequired as exc:
        fail(f"{exc} (--confirm {department_id})", Exit.USAGE)
    except (provisioning.NotFound, provisioning.Conflict) as exc:
        _audit("deprovision", department_id, "rejected", reason=str(exc))
        code = Exit.NOT_FOUND if isinstance(exc, provisioning.NotFound) else Exit.CONFLICT
        fail(str(exc), code)
    _audit("deprovision", department_id, "accepted", provisioningId=str(submission.job_id))
    finish_submission(submission, "deprovisioning", wait, timeout, as_json)


@provisioning_cli.command("update")
@click.argument("changes_file", type=click.File("r"))
@click.option("--department", "department_id", default=None, help="Default: the file's.")
@wait_options
@json_option
def update_command(
    changes_file: Any, department_id: str | None, wait: bool, timeout: float | None, as_json: bool
) -> None:
    """Apply the fields in CHANGES_FILE (JSON, as PATCH /api/departments/<id> takes)
    to a department; only the difference is re-run, as a tracked job."""
    from app.api.provisioning_schemas import DepartmentConfigSchema

    try:
        changes = dict(json.load(changes_file))
    except (ValueError, TypeError) as exc:
        fail(f"invalid JSON in {changes_file.name}: {exc}", Exit.USAGE)
    department_id = department_id or changes.pop("departmentId", None)
    changes.pop("departmentId", None)
    if not department_id:
        fail("name the department: departmentId in the file or --department", Exit.USAGE)
    protection = changes.pop("deletionProtection", None)
    current = queries.department_config(department_id)
    if current is None:
        fail(f"department {department_id} not found", Exit.NOT_FOUND)
    merged = {**current, **changes}
    errors = DepartmentConfigSchema().validate(merged)
    if errors:
        fail(f"invalid configuration: {json.dumps(errors)}", Exit.USAGE)
    require_redis()
    try:
        submission = lifecycle.request_update(
            department_id, merged, protection, _cli_actor(), settings=config.current()
        )
    except (provisioning.Conflict, provisioning.NotFound) as exc:
        _audit("update", department_id, "rejected", reason=str(exc))
        code = Exit.NOT_FOUND if isinstance(exc, provisioning.NotFound) else Exit.CONFLICT
        fail(str(exc), code)
    if submission is None:
        _audit("update", department_id, "ok")
        emit(
            queries.department_view(department_id),
            as_json,
            lambda: click.echo(f"{department_id}: updated, no job needed"),
        )
        return
    _audit("update", department_id, "accepted", provisioningId=str(submission.job_id))
    finish_submission(submission, "updating", wait, timeout, as_json)


@provisioning_cli.command("repair")
@click.argument("department_id")
@wait_options
@json_option
def repair_command(department_id: str, wait: bool, timeout: float | None, as_json: bool) -> None:
    """Re-create only the resources of DEPARTMENT_ID whose health checks fail."""
    require_redis()
    try:
        failing = lifecycle.failing_checks(department_id, config.current())
        if not failing:
            emit(
                {"departmentId": department_id, "failing": []},
                as_json,
                lambda: click.echo(f"{department_id} is healthy; nothing to repair"),
            )
            return
        submission = lifecycle.request_repair(
            department_id, failing, _cli_actor(), settings=config.current()
        )
    except (provisioning.Conflict, provisioning.NotFound) as exc:
        _audit("repair", department_id, "rejected", reason=str(exc))
        code = Exit.NOT_FOUND if isinstance(exc, provisioning.NotFound) else Exit.CONFLICT
        fail(str(exc), code)
    _audit("repair", department_id, "accepted", provisioningId=str(submission.job_id))
    finish_submission(submission, f"repairing {', '.join(failing)} of", wait, timeout, as_json)


@provisioning_cli.command("health")
@click.argument("department_id")
@json_option
def health_command(department_id: str, as_json: bool) -> None:
    """Run DEPARTMENT_ID's health checks now; exit 7 when any fails."""
    from app.domain.services.health import department_health

    result = department_health(department_id, config.current())
    if result is None:
        fail(f"department {department_id} not found", Exit.NOT_FOUND)

    def text() -> None:
        for check in result["checks"]:
            mark = "ok  " if check["healthy"] else "FAIL"
            click.echo(f"  {mark} {check['name']:<22} {check['latency']:8.1f} ms {check['detail']}")
        click.echo(f"healthy: {str(result['healthy']).lower()}")

    emit(result, as_json, text)
    if not result["healthy"]:
        raise SystemExit(Exit.UNHEALTHY)


@provisioning_cli.command("history")
@click.argument("department_id")
@json_option
def history_command(department_id: str, as_json: bool) -> None:
    """DEPARTMENT_ID's configuration versions: who, when, what changed."""
    versions = queries.config_history(department_id)
    if versions is None:
        fail(f"department {department_id} not found", Exit.NOT_FOUND)
    lines = [
        f"v{v['version']:<4} {v['createdAt']} {v['actor'] or '-':<28} {json.dumps(v['diff'])}"
        for v in versions
    ]
    emit({"departmentId": department_id, "versions": versions}, as_json, lambda: echo_lines(lines))


@provisioning_cli.command("drift")
@click.option("--repair", is_flag=True, help="Start a repair job for each drifted department.")
@click.option("--wait", is_flag=True, help="With --repair: wait for the repairs to end.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=600.0,
    show_default=True,
    help="With --wait: seconds to wait for each repair.",
)
@json_option
def drift_command(repair: bool, wait: bool, timeout: float, as_json: bool) -> None:
    """Check every ACTIVE or DEGRADED department once (what the beat task does).

    Exits 0 when nothing drifted (or --repair --wait repaired all of it), 7 when
    drift remains, 1 when a repair job failed."""
    from app.domain.services.drift import detect_drift

    if repair:
        require_redis()
    findings = detect_drift(config.current(), repair=repair or None)
    rows = [
        {
            "departmentId": f.department_id,
            "failing": list(f.failing),
            "repairJob": f.repair_job,
            "notRepaired": f.not_repaired,
        }
        for f in findings
    ]
    outcomes = {}
    if wait:
        for job in (f.repair_job for f in findings if f.repair_job):
            outcomes[job] = wait_for(uuid.UUID(job), timeout, live=False)["status"]
    emit({"drifted": rows, "repairs": outcomes}, as_json, lambda: _drift_text(rows, outcomes))
    if any(status != "completed" for status in outcomes.values()):
        raise SystemExit(Exit.FAILED)
    if any(r["repairJob"] is None or r["repairJob"] not in outcomes for r in rows):
        raise SystemExit(Exit.UNHEALTHY)


def _drift_text(rows: list[dict[str, Any]], outcomes: dict[str, str]) -> None:
    for row in rows:
        started = f" (repair job {row['repairJob']})" if row["repairJob"] else ""
        if row["notRepaired"]:
            started = f" (not repaired: {row['notRepaired']})"
        click.echo(f"{row['departmentId']}: DEGRADED: {', '.join(row['failing'])}{started}")
    for job, status in outcomes.items():
        click.echo(f"repair {job}: {status}")
    click.echo(f"{len(rows)} department(s) drifted")
