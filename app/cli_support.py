"""What every `provisioning` command shares: exit codes scripts can branch on,
`--json` output, waiting with a timeout, and one line (not a traceback) when
PostgreSQL or Redis cannot be reached."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from enum import IntEnum
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import click
from flask.cli import AppGroup
from sqlalchemy.engine import make_url

from app import config
from app.config import CONFIG_EXIT_CODE
from app.domain.services.provisioning import Submission

F = TypeVar("F", bound=Callable[..., Any])


class Exit(IntEnum):
    """Documented in the README (CLI); keep them stable."""

    OK = 0
    FAILED = 1  # the job ended failed or cancelled, or an operation could not finish
    USAGE = 2  # bad arguments or input file (click's own code for usage errors)
    CONFIG = CONFIG_EXIT_CODE  # invalid settings
    NOT_FOUND = 4  # no such department or job
    TIMEOUT = 5  # --wait --timeout ran out; the job goes on
    CONFLICT = 6  # refused by the department's state (already ACTIVE, a job in flight...)
    UNHEALTHY = 7  # health or drift found something wrong
    UNREACHABLE = 8  # PostgreSQL or Redis cannot be reached


class CommandFailed(click.ClickException):
    """A message on stderr and a documented exit code."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        # click 8.5 types exit_code as a ClassVar; click reads it from the
        # instance, so an instance attribute gives each failure its own code.
        self.exit_code = int(code)  # type: ignore[misc]


def fail(message: str, code: Exit) -> NoReturn:
    raise CommandFailed(message, code)


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(command)


def wait_options(command: F) -> F:
    command = click.option(
        "--timeout",
        type=click.FloatRange(min=1),
        default=None,
        help=f"With --wait: give up waiting after this many seconds (exit {Exit.TIMEOUT}).",
    )(command)
    return click.option("--wait", is_flag=True, help="Wait until the job ends.")(command)


def emit(data: Any, as_json: bool, text: Callable[[], None] | None = None) -> None:
    """JSON for programs (one document on stdout), or the text people read."""
    if as_json or text is None:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        text()


def job_exit(status: str) -> Exit:
    return Exit.OK if status == "completed" else Exit.FAILED


def wait_for(job_id: uuid.UUID, timeout: float | None, live: bool) -> dict[str, Any]:
    """Waits for the job's end (showing it live for people); its final view.
    Raises CommandFailed(TIMEOUT) when ``timeout`` runs out first."""
    from app.cli_progress import follow
    from app.domain.services import queries

    if live:
        follow(job_id, timeout=timeout)
    else:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not _finished(job_id):
            if deadline is not None and time.monotonic() > deadline:
                _timed_out(job_id, timeout)
            time.sleep(0.5)
    view = queries.job_view(job_id, config.current())
    if view is None:
        fail(f"job {job_id} not found", Exit.NOT_FOUND)
    return view


def _finished(job_id: uuid.UUID) -> bool:
    from app.domain.services import queries

    view = queries.job_view(job_id, config.current())
    return view is None or bool(view["completedAt"])


def _timed_out(job_id: uuid.UUID, timeout: float | None) -> NoReturn:
    fail(f"job {job_id} still running after {timeout:g}s (it goes on)", Exit.TIMEOUT)


def finish_submission(
    submission: Submission,
    what: str,
    wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Reports the new job; with --wait follows it and exits by how it ended."""
    summary = {
        "provisioningId": str(submission.job_id),
        "departmentId": submission.department_id,
        "created": submission.created,
        "status": submission.state.lower(),
    }
    if not wait:
        emit(
            summary,
            as_json,
            lambda: click.echo(f"{what} {submission.department_id}: job {submission.job_id}"),
        )
        return
    if not as_json:
        click.echo(f"{what} {submission.department_id}: job {submission.job_id}")
    view = wait_for(submission.job_id, timeout, live=not as_json)
    if as_json:
        emit(view, True)
    if job_exit(view["status"]) != Exit.OK:
        raise SystemExit(job_exit(view["status"]))


def unreachable(exc: BaseException) -> str | None:
    """A one-line reason when ``exc`` means PostgreSQL or Redis is unreachable."""
    import kombu.exceptions
    import redis.exceptions
    import sqlalchemy.exc

    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        url = make_url(config.current().DATABASE_URL)
        where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"
        first = str(exc.orig or exc).strip().splitlines()[0]
        return f"PostgreSQL is unreachable at {where} (DATABASE_URL): {first}"
    if isinstance(exc, redis.exceptions.ConnectionError | kombu.exceptions.OperationalError):
        parts = urlsplit(config.current().REDIS_URL)  # no password in the message
        where = f"{parts.hostname}:{parts.port or 6379}{parts.path}"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"Redis is unreachable at {where} (REDIS_URL): {first}"
    return None


def require_redis() -> None:
    """Commands that queue work check the broker first: with Redis down the job
    would be recorded but sit until the sweeper could send it."""
    import redis

    client = redis.Redis.from_url(config.current().REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    finally:
        client.close()


class ProvisioningGroup(AppGroup):
    """Turns an unreachable PostgreSQL or Redis into one line and exit code 8."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException:
            raise
        except Exception as exc:
            reason = unreachable(exc)
            if reason is None:
                raise
            raise CommandFailed(reason, Exit.UNREACHABLE) from None
