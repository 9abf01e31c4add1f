"""`flask provisioning final-copies ...`: the copies deprovisions kept, and undoing one."""

from __future__ import annotations

import getpass
import uuid

import click
from cryptography.fernet import InvalidToken
from flask.cli import AppGroup

from app import config
from app.domain.services import final_copies, provisioning
from app.domain.services.audit import record_action
from app.providers.base import ProviderError

final_copies_cli = AppGroup(
    "final-copies", help="Tenant schemas kept by `DELETE /api/deprovision/<id>?finalCopy=true`."
)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@final_copies_cli.command("list")
@click.option("--department", "department_id", default=None, help="Only this department's.")
def list_command(department_id: str | None) -> None:
    """List final copies: id, department, status, size, expiry."""
    copies = final_copies.list_copies(department_id)
    for copy in copies:
        expires = copy["expiresAt"].isoformat(timespec="seconds") if copy["expiresAt"] else "-"
        click.echo(
            f"{copy['id']}  {copy['departmentId']:<31} {copy['status']:<9} "
            f"{copy['sizeBytes'] or 0:>10} bytes  expires {expires}"
            + (f"  ({copy['error']})" if copy["error"] else "")
        )
    click.echo(f"{len(copies)} final cop{'y' if len(copies) == 1 else 'ies'}")


@final_copies_cli.command("restore")
@click.argument("copy_id", type=click.UUID)
def restore_command(copy_id: uuid.UUID) -> None:
    """Undo a deprovision: provision the department again with its last
    configuration (new credentials), then load the copy into its schema.
    For an ACTIVE department, only the data is loaded."""
    from app.cli import follow, report_health

    try:
        plan = final_copies.plan_restore(copy_id)
    except final_copies.CopyRefused as exc:
        _audit(copy_id, "rejected", str(exc))
        raise click.ClickException(str(exc)) from exc
    if plan.needs_provisioning:
        try:
            submission = provisioning.submit_provisioning(
                plan.config, _actor(), settings=config.current()
            )
        except provisioning.Conflict as exc:
            _audit(copy_id, "conflict", str(exc))
            raise click.ClickException(str(exc)) from exc
        click.echo(f"provisioning {plan.department_id} again: job {submission.job_id}")
        if follow(submission.job_id) != "completed":
            _audit(copy_id, "failed", "provisioning did not complete")
            raise click.ClickException("provisioning did not complete; the copy is kept")
    try:
        final_copies.load_copy(copy_id, _actor(), config.current())
    except (final_copies.CopyRefused, ProviderError, InvalidToken) as exc:
        _audit(copy_id, "failed", str(exc))
        raise click.ClickException(f"loading the copy failed: {exc}") from exc
    _audit(copy_id, "ok", f"restored into {plan.department_id}")
    click.echo(f"final copy {copy_id} restored into {plan.department_id}")
    report_health(plan.department_id)


def _audit(copy_id: uuid.UUID, outcome: str, message: str) -> None:
    record_action(
        "final_copy.restore", f"final-copy:{copy_id}", outcome, _actor(), None, {"message": message}
    )
