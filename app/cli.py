"""Operator commands: `flask provisioning ...` and `flask token create`."""

from __future__ import annotations

import getpass
import json
import re
import time
import uuid
from datetime import timedelta
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup

from app import config
from app.domain.services import cleanup, provisioning, queries
from app.domain.services.sweeper import sweep

provisioning_cli = AppGroup("provisioning", help="Inspect, retry and clean up provisioning jobs.")
token_cli = AppGroup("token", help="Mint API tokens for operators.")
TTL = re.compile(r"^(\d+)([smhd])$")
TTL_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


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
        raise click.ClickException(f"invalid configuration: {json.dumps(detail)}") from exc
    try:
        submission = provisioning.submit_provisioning(payload, _cli_actor())
    except provisioning.Conflict as exc:
        click.echo(str(exc))
        report_health(payload["departmentId"])
        return
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
    """Prints the job's log lines as they appear and a progress line per step."""
    shown, last_status = 0, ""
    while True:
        view = queries.job_view(job_id, config.current())
        assert view is not None
        for line in view["logs"][shown:]:
            click.echo(f"  {line}")
        shown = len(view["logs"])
        if view["status"] != last_status:
            last_status = view["status"]
            bar = "#" * (view["progress"]["percentage"] // 5)
            click.echo(f"[{bar:<20}] {view['progress']['percentage']:3d}% {last_status}")
        if view["completedAt"]:
            if view["error"]:
                click.echo(f"error: {view['error']}", err=True)
            return str(view["status"])
        time.sleep(poll)


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
    except (provisioning.Conflict, provisioning.NotFound) as exc:
        raise click.ClickException(str(exc)) from exc
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
        raise click.ClickException(str(exc)) from exc
    for line in report.lines:
        click.echo(line)
    if not report.ok:
        raise click.ClickException("some resources could not be removed (see above)")


@provisioning_cli.command("sweep")
def sweep_command() -> None:
    """Resume or roll back stalled jobs once (what the beat sweeper does)."""
    actions = sweep(config.current())
    for action in actions:
        click.echo(
            f"{action.action}: job {action.job_id} (generation {action.generation}) "
            f"steps {', '.join(action.steps) or '-'}"
        )
    click.echo(f"{len(actions)} stalled job(s) handled")


@token_cli.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(["admin", "department"]))
@click.option("--department", "department_id", default=None)
@click.option("--ttl", default="12h", show_default=True, help="e.g. 30m, 12h, 7d")
def create_token_command(email: str, role: str, department_id: str | None, ttl: str) -> None:
    """Print a signed API token."""
    from app.api.auth import mint_token

    match = TTL.match(ttl)
    if not match:
        raise click.BadParameter("use a number and s, m, h or d, e.g. 12h", param_hint="--ttl")
    if role == "department" and not department_id:
        raise click.BadParameter("a department token needs --department", param_hint="--department")
    delta = timedelta(**{TTL_UNITS[match.group(2)]: int(match.group(1))})
    click.echo(mint_token(email, role, department_id, delta))


def register_cli(app: Flask) -> None:
    app.cli.add_command(provisioning_cli)
    app.cli.add_command(token_cli)
