"""Operator commands for API tokens: `flask token create` and `flask token revoke`."""

from __future__ import annotations

import re
from datetime import timedelta

import click
from flask.cli import AppGroup

from app.cli import _audit

token_cli = AppGroup("token", help="Mint and revoke API tokens.")
TTL = re.compile(r"^(\d{1,6})([smhd])$")
TTL_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _ttl(email: str, ttl: str) -> timedelta:
    match = TTL.match(ttl)
    if not match:
        _audit("token.create", f"token:{email}", "rejected:invalid", reason="ttl")
        raise click.BadParameter("use a number and s, m, h or d, e.g. 12h", param_hint="--ttl")
    return timedelta(**{TTL_UNITS[match.group(2)]: int(match.group(1))})


@token_cli.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(["admin", "department"]))
@click.option("--department", "department_id", default=None)
@click.option("--ttl", default="12h", show_default=True, help="e.g. 30m, 12h, 7d")
def create_token_command(email: str, role: str, department_id: str | None, ttl: str) -> None:
    """Print a signed API token (at most JWT_MAX_TTL_DAYS long)."""
    from app.api.auth import TokenRefused, mint_token
    from app.domain.services.incarnations import current_incarnation

    delta = _ttl(email, ttl)
    if role == "department" and not department_id:
        _audit("token.create", f"token:{email}", "rejected:invalid", reason="no department")
        raise click.BadParameter("a department token needs --department", param_hint="--department")
    try:
        token = mint_token(email, role, department_id, delta)
    except TokenRefused as exc:
        _audit("token.create", f"token:{email}", "rejected:invalid", reason="ttl over maximum")
        raise click.BadParameter(str(exc), param_hint="--ttl") from exc
    if department_id and current_incarnation(department_id) is None:
        click.echo(
            f"warning: no department {department_id} exists; this token will not open one "
            "created later",
            err=True,
        )
    # The token itself is a secret and never recorded.
    _audit("token.create", f"token:{email}", "ok", role=role, departmentId=department_id, ttl=ttl)
    click.echo(token)


@token_cli.command("revoke")
@click.argument("token", required=False)
@click.option("--email", default=None, help="Revoke every token of this user issued so far.")
def revoke_token_command(token: str | None, email: str | None) -> None:
    """Revoke one token (given as the argument) or all of a user's (--email).

    Takes effect on the next request to any API process (Redis blocklist)."""
    if bool(token) == bool(email):
        raise click.UsageError("give either a TOKEN or --email")
    if email:
        from app.api.token_blocklist import revoke_user

        revoke_user(email)
        _audit("token.revoke", f"token:{email}", "ok", scope="every token issued so far")
        click.echo(f"revoked every token of {email} issued so far")
        return
    _revoke_one(str(token))


def _revoke_one(token: str) -> None:
    from flask_jwt_extended import decode_token
    from jwt import PyJWTError

    from app.api.token_blocklist import revoke_token, token_id

    try:
        claims = decode_token(token, allow_expired=True)
    except PyJWTError as exc:
        _audit("token.revoke", "token:-", "rejected:invalid", reason=type(exc).__name__)
        raise click.ClickException(f"not a token signed with this JWT_SECRET: {exc}") from exc
    revoked = token_id(claims)
    revoke_token(revoked, int(claims["exp"]))
    _audit("token.revoke", f"token:{claims.get('email')}", "ok", jti=revoked)
    click.echo(f"revoked token {revoked} of {claims.get('email')}")
