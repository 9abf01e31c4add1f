"""Operator commands: `flask provisioning ...` and `flask token create`."""

from __future__ import annotations

import getpass
import json
import time
import uuid
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup

from app import config
from app.domain.services import cleanup, provisioning, queries
from app.domain.services.audit import record_action
from app.domain.services.sweeper import sweep

provisioning_cli = AppGroup("provisioning", help="Inspect, retry and clean up provisioning jobs.")


def _cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


def _audit(action: str, target: str, outcome: str, **details: Any) -> None:
    """Operators' commands join the API's requests in the audit trail."""
    record_action(action, target, outcome, _cli_actor(), None, details or None)


def _print(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@provisioning_cli.command("list")
@click.option("--status", default=None, help="Only departments with this status.")
def list_command(status: str | None) -> None:
    """List departments and their status."""
    rows, total = queries.list_departments(status, 1, 10_000)
    for row in rows:
        click.echo(f"{row['departmentId']:<32} {row['status']:<15} {row['deploymentUrl'] or '-'}")
    click.echo(f"{total} department(s)")


def _job_id(value: str) -> uuid.UUID:
    """Accepts a provisioningId, or a departmentId meaning its latest job."""
    try:
        return uuid.UUID(value)
    except ValueError:
        job_id = queries.latest_job_id(value)
        if job_id is None:
            raise click.ClickException(f"no job or department called {value!r}") from None
        return job_id


@provisioning_cli.command("provision")
@click.argument("config_file", type=click.File("r"))
@click.option("--wait", is_flag=True, help="Follow the job live until it ends.")
def provision_command(config_file: Any, wait: bool) -> None:
    """Submit a department configuration (JSON), as POST /api/provision-department does."""
    from marshmallow import ValidationError

    from app.api.provisioning_schemas import DepartmentConfigSchema

    try:
        payload = DepartmentConfigSchema().load(json.load(config_file))
    except (ValueError, ValidationError) as exc:
        detail = exc.messages if isinstance(exc, ValidationError) else str(exc)
        _audit("provision", f"file:{getattr(config_file, 'name', '-')}", "rejected:invalid")
        raise click.ClickException(f"invalid configuration: {json.dumps(detail)}") from exc
    try:
        submission = provisioning.submit_provisioning(payload, _cli_actor())
    except provisioning.Conflict as exc:
        _audit("provision", payload["departmentId"], "conflict", message=str(exc))
        click.echo(str(exc))
        report_health(payload["departmentId"])
        return
    _audit("provision", submission.department_id, "accepted", provisioningId=str(submission.job_id))
    click.echo(f"provisioning {submission.department_id}: job {submission.job_id}")
    if not wait:
        return
    if follow(submission.job_id) != "completed":
        raise SystemExit(1)
    report_health(submission.department_id)


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
def status_command(job: str) -> None:
    """Show a job (by provisioningId, or a departmentId's latest job)."""
    view = queries.job_view(_job_id(job), config.current())
    if view is None:
        raise click.ClickException(f"job {job} not found")
    _print(view)


@provisioning_cli.command("retry")
@click.argument("job")
def retry_command(job: str) -> None:
    """Start a failed job again as a new job of the same kind."""
    try:
        submission = provisioning.retry_job(_job_id(job), _cli_actor())
    except (provisioning.Conflict, provisioning.NotFound, click.ClickException) as exc:
        outcome = "conflict" if isinstance(exc, provisioning.Conflict) else "rejected:not_found"
        _audit("retry", job, outcome, message=str(exc))
        raise click.ClickException(str(exc)) from exc
    _audit(
        "retry",
        submission.department_id,
        "accepted",
        retried=job,
        provisioningId=str(submission.job_id),
    )
    click.echo(
        f"job {submission.job_id} for {submission.department_id}: {submission.state.lower()}"
    )


@provisioning_cli.command("cleanup")
@click.argument("department_id")
@click.option("--force", is_flag=True, help="Even while a job for the department is in flight.")
def cleanup_command(department_id: str, force: bool) -> None:
    """Remove every resource of DEPARTMENT_ID that exists, with or without records."""
    try:
        report = cleanup.cleanup_department(department_id, config.current(), force=force)
    except cleanup.CleanupRefused as exc:
        _audit("cleanup", department_id, "conflict", force=force, message=str(exc))
        raise click.ClickException(str(exc)) from exc
    _audit(
        "cleanup",
        department_id,
        "ok" if report.ok else "failed",
        force=force,
        report=list(report.lines),
    )
    for line in report.lines:
        click.echo(line)
    if not report.ok:
        raise click.ClickException("some resources could not be removed (see above)")


@provisioning_cli.command("cancel")
@click.argument("job")
def cancel_command(job: str) -> None:
    """Cancel a job: it stops at the next safe point and rolls back."""
    from app.domain.services.lifecycle import request_cancel

    try:
        submission = request_cancel(_job_id(job), _cli_actor())
    except (provisioning.Conflict, provisioning.NotFound) as exc:
        _audit("cancel", job, "rejected", reason=str(exc))
        raise click.ClickException(str(exc)) from exc
    _audit("cancel", submission.department_id, "accepted", provisioningId=str(submission.job_id))
    click.echo(f"job {submission.job_id}: cancel requested")


@provisioning_cli.command("repair")
@click.argument("department_id")
def repair_command(department_id: str) -> None:
    """Re-create only the resources of DEPARTMENT_ID whose health checks fail."""
    from app.domain.services.lifecycle import failing_checks, request_repair

    try:
        failing = failing_checks(department_id, config.current())
        if not failing:
            click.echo(f"{department_id} is healthy; nothing to repair")
            return
        submission = request_repair(department_id, failing, _cli_actor())
    except (provisioning.Conflict, provisioning.NotFound) as exc:
        _audit("repair", department_id, "rejected", reason=str(exc))
        raise click.ClickException(str(exc)) from exc
    _audit("repair", department_id, "accepted", provisioningId=str(submission.job_id))
    click.echo(f"repairing {', '.join(failing)}: job {submission.job_id}")


@provisioning_cli.command("drift")
@click.option("--repair", is_flag=True, help="Start a repair job for each drifted department.")
@click.option("--wait", is_flag=True, help="With --repair: wait for the repairs to end.")
def drift_command(repair: bool, wait: bool) -> None:
    """Check every ACTIVE or DEGRADED department once (what the beat task does)."""
    from app.domain.services.drift import detect_drift

    findings = detect_drift(config.current(), repair=repair or None)
    for finding in findings:
        started = f" (repair job {finding.repair_job})" if finding.repair_job else ""
        if finding.not_repaired:
            started = f" (not repaired: {finding.not_repaired})"
        click.echo(f"{finding.department_id}: DEGRADED: {', '.join(finding.failing)}{started}")
    click.echo(f"{len(findings)} department(s) drifted")
    jobs = [f.repair_job for f in findings if f.repair_job]
    if wait and any(_wait_quietly(uuid.UUID(job)) != "completed" for job in jobs):
        raise SystemExit(1)
    if any(f.not_repaired for f in findings):
        raise SystemExit(1)


def _wait_quietly(job_id: uuid.UUID, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = queries.job_view(job_id, config.current())
        if view is not None and view["completedAt"]:
            click.echo(f"repair {job_id} of {view['departmentId']}: {view['status']}")
            return str(view["status"])
        time.sleep(0.5)
    click.echo(f"repair {job_id}: still running after {timeout:g}s", err=True)
    return "timeout"


@provisioning_cli.command("sweep")
def sweep_command() -> None:
    """Resume or roll back stalled jobs once (what the beat sweeper does)."""
    actions = sweep(config.current())
    # Run by a person, it changes jobs like the API does; beat's own sweeps are not audited.
    _audit("sweep", "jobs", "ok", jobs=[str(a.job_id) for a in actions])
    for action in actions:
        click.echo(
            f"{action.action}: job {action.job_id} (generation {action.generation}) "
            f"steps {', '.join(action.steps) or '-'}"
        )
    click.echo(f"{len(actions)} stalled job(s) handled")


def register_cli(app: Flask) -> None:
    from app.cli_secrets import refuse_wrong_key, secrets_cli
    from app.cli_tokens import token_cli

    for group in (provisioning_cli, token_cli):
        group.callback = refuse_wrong_key
        app.cli.add_command(group)
    app.cli.add_command(secrets_cli)
