"""What running one step (or compensation) came to; the Celery task maps each
outcome onto Celery's own vocabulary (return, retry, ignore, raise)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Proceed:
    """Done (or already done): the chain may go on."""


@dataclass(frozen=True)
class Stale:
    """This message is outdated or another worker owns the job: do nothing."""

    reason: str


@dataclass(frozen=True)
class RetryLater:
    countdown: float
    reason: str


@dataclass(frozen=True)
class Failed:
    """The job now rolls back; the task raises so that link_error fires."""

    reason: str


Outcome = Proceed | Stale | RetryLater | Failed
