"""Operator commands: `provisioning ...` (also `flask provisioning ...`); the
`flask token` verbs are in cli_tokens.py. Exit codes and --json: app/cli_support.py, README (CLI).
Lifecycle verbs (deprovision, update, repair, health, history, drift): cli_jobs.py."""

from __future__ import annotations

import getpass
import json
import uuid
from typing import Any

import click
from flask import Flask

from app import config
from app.cli_support import (
    Exit,
    ProvisioningGroup,
    emit,
    fail,
    finish_submission,
    json_option,
    require_redis,
    wait_options,
)
from app.domain.services import cleanup, lifecycle, provisioning, queries
from app.domain.services.audit import record_action
from app.domain.services.sweeper import sweep

provisioning_cli = ProvisioningGroup(
    "provisioning", help="Provision departments; inspect, retry and clean up their jobs."
)


def _cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


def _audit(action: str, target: str, outcome: str, **details: Any) -> None:
    """Operators' commands join the API's requests in the audit trail."""
    record_action(action, target, outcome, _cli_actor(), None, details or None)


@provisioning_cli.command("list")
@click.option("--status", default=None, help="Only departments with this status.")
@json_option
def list_command(status: str | None, as_json: bool) -> None:
    """List departments and their status."""
    rows, total = queries.list_departments(status, 1, 10_000)

    def text() -> None:
        for row in rows:
            url = row["deploymentUrl"] or "-"
            click.echo(f"{row['departmentId']:<32} {row['status']:<15} {url}")
        click.echo(f"{total} department(s)")

    emit({"departments": rows, "total": total}, as_json, text)


def echo_lines(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)


def _job_id(value: str) -> uuid.UUID:
    """Accepts a provisioningId, or a departmentId meaning its latest job."""
    try:
        return uuid.UUID(value)
    except ValueError:
        job_id = queries.latest_job_id(value)
        if job_id is None:
            fail(f"no job or department called {value!r}", Exit.NOT_FOUND)
        return job_id


@provisioning_cli.command("provision")
@click.argument("config_file", type=click.File("r"))
@wait_options
@json_option
def provision_command(config_file: Any, wait: bool, timeout: float | None, as_json: bool) -> None:
    """Submit a department configuration (JSON), as POST /api/provision-department does.

    Exits 0 when submitted (with --wait: when completed), 6 when the department is
    already ACTIVE or has a job in flight, 1 when the job failed."""
    payload = load_config(config_file, "provision")
    require_redis()
    try:
        submission = provisioning.submit_provisioning(
            payload, _cli_actor(), settings=config.current()
        )
    except provisioning.Conflict as exc:
        _audit("provision", payload["departmentId"], "conflict", message=str(exc))
        if not as_json:
            report_health(payload["departmentId"])
        fail(str(exc), Exit.CONFLICT)
    _audit("provision", submission.department_id, "accepted", provisioningId=str(submission.job_id))
    finish_submission(submission, "provisioning", wait, timeout, as_json)
    if wait and not as_json:
        report_health(submission.department_id)


def load_config(config_file: Any, action: str) -> dict[str, Any]:
    """The file's department configuration, validated as the API does (exit 2 if not)."""
    from marshmallow import ValidationError

    from app.api.provisioning_schemas import DepartmentConfigSchema

    try:
        return dict(DepartmentConfigSchema().load(json.load(config_file)))
    except (ValueError, ValidationError) as exc:
        detail = exc.messages if isinstance(exc, ValidationError) else str(exc)
        _audit(action, f"file:{getattr(config_file, 'name', '-')}", "rejected:invalid")
        fail(f"invalid configuration: {json.dumps(detail)}", Exit.USAGE)


def report_health(department_id: str) -> None:
    """The department's gateway URL and a live health check, as the last word."""
    from app.domain.services.health import department_health

    rows, _ = queries.list_departments(None, 1, 1, department_id)
    if rows:
        click.echo(f"deploymentUrl: {rows[0]['deploymentUrl'] or '-'}")
    result = department_health(department_id, config.current())
    if result is None:
        return
    for check in result["checks"]:
        mark = "ok  " if check["healthy"] else "FAIL"
        click.echo(f"  {mark} {check['name']:<22} {check['latency']:8.1f} ms {check['detail']}")
    click.echo(f"healthy: {str(result['healthy']).lower()}")


def follow(job_id: uuid.UUID, poll: float = 0.5) -> str:
    """Shows the job live until it ends (see app/cli_progress.py); returns its status."""
    from app.cli_progress import follow as follow_job

    return follow_job(job_id, poll)


@provisioning_cli.command("status")
@click.argument("job")
@json_option
def status_command(job: str, as_json: bool) -> None:
    """Show a job (by provisioningId, or a departmentId's latest job); always JSON."""
    view = queries.job_view(_job_id(job), config.current())
    if view is None:
        fail(f"job {job} not found", Exit.NOT_FOUND)
    emit(view, True)


@provisioning_cli.command("retry")
@click.argument("job")
@wait_options
@json_option
def retry_command(job: str, wait: bool, timeout: float | None, as_json: bool) -> None:
    """Start a failed job again as a new job of the same kind."""
    require_redis()
    try:
        submission = lifecycle.retry_job(_job_id(job), _cli_actor(), config.current())
    except (provisioning.Conflict, provisioning.NotFound, click.ClickException) as exc:
        outcome = "conflict" if isinstance(exc, provisioning.Conflict) else "rejected:not_found"
        _audit("retry", job, outcome, message=str(exc))
        code = Exit.CONFLICT if isinstance(exc, provisioning.Conflict) else Exit.NOT_FOUND
        fail(str(exc), code)
    _audit(
        "retry",
        submission.department_id,
        "accepted",
        retried=job,
        provisioningId=str(submission.job_id),
    )
    finish_submission(submission, "retrying", wait, timeout, as_json)


@provisioning_cli.command("cleanup")
@click.argument("department_id")
@click.option("--force", is_flag=True, help="Even while a job for the department is in flight.")
@json_option
def cleanup_command(department_id: str, force: bool, as_json: bool) -> None:
    """Remove every resource of DEPARTMENT_ID that exists, with or without records."""
    try:
        report = cleanup.cleanup_department(department_id, config.current(), force=force)
    except cleanup.CleanupRefused as exc:
        _audit("cleanup", department_id, "conflict", force=force, message=str(exc))
        fail(str(exc), Exit.CONFLICT)
    lines = list(report.lines)
    _audit("cleanup", department_id, "ok" if report.ok else "failed", force=force, report=lines)
    body = {"departmentId": department_id, "ok": report.ok, "report": lines}
    emit(body, as_json, lambda: echo_lines(lines))
    if not report.ok:
        fail("some resources could not be removed (see above)", Exit.FAILED)


@provisioning_cli.command("cancel")
@click.argument("job")
@json_option
def cancel_command(job: str, as_json: bool) -> None:
    """Cancel a job: it stops at the next safe point and rolls back."""
    from app.domain.services.lifecycle import request_cancel

    require_redis()
    try:
        submission = request_cancel(_job_id(job), _cli_actor())
    except (provisioning.Conflict, provisioning.NotFound) as exc:
        _audit("cancel", job, "rejected", reason=str(exc))
        code = Exit.CONFLICT if isinstance(exc, provisioning.Conflict) else Exit.NOT_FOUND
        fail(str(exc), code)
    _audit("cancel", submission.department_id, "accepted", provisioningId=str(submission.job_id))
    summary = {"provisioningId": str(submission.job_id), "status": "cancelling"}
    emit(summary, as_json, lambda: click.echo(f"job {submission.job_id}: cancel requested"))


@provisioning_cli.command("sweep")
@json_option
def sweep_command(as_json: bool) -> None:
    """Resume or roll back stalled jobs once (what the beat sweeper does)."""
    require_redis()
    actions = sweep(config.current())
    # Run by a person, it changes jobs like the API does; beat's own sweeps are not audited.
    _audit("sweep", "jobs", "ok", jobs=[str(a.job_id) for a in actions])

    def text() -> None:
        for action in actions:
            click.echo(
                f"{action.action}: job {action.job_id} (generation {action.generation}) "
                f"steps {', '.join(action.steps) or '-'}"
            )
        click.echo(f"{len(actions)} stalled job(s) handled")

    rows = [
        {
            "action": a.action,
            "provisioningId": str(a.job_id),
            "generation": a.generation,
            "steps": list(a.steps),
        }
        for a in actions
    ]
    emit({"handled": rows}, as_json, text)


def register_cli(app: Flask) -> None:
    from app import cli_jobs  # noqa: F401 - registers the lifecycle verbs
    from app.cli_final_copies import final_copies_cli
    from app.cli_secrets import refuse_wrong_key, rotate_credentials_command, secrets_cli
    from app.cli_tokens import token_cli

    provisioning_cli.add_command(final_copies_cli)
    provisioning_cli.add_command(rotate_credentials_command)
    for group in (provisioning_cli, token_cli):
        group.callback = refuse_wrong_key
        app.cli.add_command(group)
    app.cli.add_command(secrets_cli)
