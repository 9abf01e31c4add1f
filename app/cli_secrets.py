"""`flask secrets ...`: the key that encrypts stored secrets, checked and rotated."""

from __future__ import annotations

import getpass
from typing import Any

import click
from cryptography.fernet import Fernet
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from app import config
from app.domain.services.audit import record_action
from app.domain.services.secrets_keys import (
    KeyCheck,
    check_stored_secrets,
    rotate_stored_secrets,
)

secrets_cli = AppGroup("secrets", help="Check and rotate SECRETS_KEY, the key of stored secrets.")


def _audit(action: str, outcome: str, **details: Any) -> None:
    record_action(action, "secrets", outcome, f"cli:{getpass.getuser()}", None, details or None)


@secrets_cli.command("check")
def check_command() -> None:
    """Whether every stored secret decrypts with SECRETS_KEY (exit 1 if not)."""
    result = check_stored_secrets(config.current().SECRETS_KEY)
    click.echo(
        f"{result.total} stored secret(s): {result.total - result.undecryptable} decrypt, "
        f"{result.undecryptable} do not, {result.not_current} under an older key"
    )
    if not result.ok:
        raise click.ClickException(result.line())


@secrets_cli.command("rotate")
def rotate_command() -> None:
    """Re-encrypt every stored secret under the newest key (the first of SECRETS_KEY).

    Safe to run again, and to interrupt: a rerun finishes what is left.
    """
    report = rotate_stored_secrets(config.current().SECRETS_KEY)
    counts = report.as_dict()
    _audit("secrets.rotate", "ok" if not report.undecryptable else "failed", **counts)
    click.echo(
        f"rotated {report.rotated}, already current {report.already_current}, "
        f"undecryptable {report.undecryptable} (of {report.total})"
    )
    if report.undecryptable:
        departments = ", ".join(sorted(report.failed_departments))
        raise click.ClickException(
            f"{report.undecryptable} secret(s) decrypt with none of the keys in SECRETS_KEY "
            f"(departments: {departments}); add the key they were written with and rerun"
        )


@secrets_cli.command("generate-key")
def generate_key_command() -> None:
    """Print a new Fernet key (put it first in SECRETS_KEY to start a rotation)."""
    click.echo(Fernet.generate_key().decode())


@with_appcontext
def refuse_wrong_key() -> None:
    """Group callback: in production nothing runs on a key that opens no secrets;
    outside production the start-up line has said so and the command goes on."""
    result: KeyCheck | None = current_app.extensions.get("secrets_key_check")
    if result is not None and not result.ok and config.current().is_production:
        raise click.ClickException(f"refusing to run: {result.line()}")


@click.command("rotate-credentials")
@click.argument("department_id")
@click.option("--wait", is_flag=True, help="Follow the job live until it ends.")
@with_appcontext
def rotate_credentials_command(department_id: str, wait: bool) -> None:
    """New database password and OAuth secret for DEPARTMENT_ID, without downtime."""
    from app.cli import _audit as audit
    from app.cli import _cli_actor, follow
    from app.domain.services import provisioning
    from app.domain.services.credentials import request_rotation

    try:
        submission = request_rotation(department_id, _cli_actor(), settings=config.current())
    except (provisioning.Conflict, provisioning.NotFound) as exc:
        audit("rotate_credentials", department_id, "rejected", reason=str(exc))
        raise click.ClickException(str(exc)) from exc
    audit("rotate_credentials", department_id, "accepted", provisioningId=str(submission.job_id))
    click.echo(f"rotating credentials of {department_id}: job {submission.job_id}")
    if wait and follow(submission.job_id) != "completed":
        raise SystemExit(1)
