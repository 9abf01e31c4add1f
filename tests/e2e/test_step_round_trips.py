"""What one step's bookkeeping costs the state database (issue 16).

A step used to take 16 statements and five transactions around its provider
call: the job row, then its steps and its department each lazily (twice), log
inserts split by the autoflush before each lazy load, a transaction of the
webhook subscriber reading both configurations on every state change, and a
BEGIN/COMMIT pair around each half of the advisory lock. The step runs here
in-process with a provider that does nothing, so only the bookkeeping is
counted; nothing is sent to Celery.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from tests.conftest import department_payload, new_department_id


class _Unsent:
    """A dispatcher that queues nothing: the test runs the steps itself."""

    def __getattr__(self, name: str) -> Any:
        return (lambda _trace: nullcontext()) if name == "joining" else (lambda *a, **k: None)


class _Nothing:
    def create(self, _context: Any) -> dict[str, Any]:
        return {}

    def delete(self, _context: Any) -> None:
        return None


@pytest.fixture()
def quiet_job(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[uuid.UUID, int]]:
    from app import config
    from app.domain import dispatch
    from app.domain.services import execution, provisioning
    from app.persistence.database import db
    from app.persistence.models import ProvisioningJob

    monkeypatch.setattr(dispatch, "_current", _Unsent())
    monkeypatch.setattr(execution, "provider", lambda _settings, _name: _Nothing())
    payload = department_payload(new_department_id())
    with app.app_context():
        submission = provisioning.submit_provisioning(payload, "test", settings=config.current())
        with db.transaction() as session:
            job = session.get(ProvisioningJob, submission.job_id)
            assert job is not None and job.admitted_at is not None, "no place for the test job"
            generation = job.generation
        yield submission.job_id, generation


def test_a_step_is_ten_statements_with_no_lazy_load(
    app: Flask, quiet_job: tuple[uuid.UUID, int]
) -> None:
    statements: list[str] = []

    def log(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    _second_step_observed(quiet_job, "before_cursor_execute", log)
    selects = [s for s in statements if s.startswith("SELECT")]
    # Two transactions, each one SELECT ... FOR UPDATE that brings the job's
    # department and steps along, plus the lock and the unlock.
    assert len([s for s in selects if "FROM provisioning_jobs" in s]) == 2, selects
    assert all(s.rstrip().endswith("FOR UPDATE OF provisioning_jobs") for s in selects
               if "FROM provisioning_jobs" in s), selects  # fmt: skip
    assert not [s for s in selects if s.startswith("SELECT departments.")], "department lazily"
    assert not [s for s in selects if s.startswith("SELECT job_steps.")], "steps lazily"
    webhook_reads = [s for s in selects if s.startswith("SELECT provisioning_jobs.config,")]
    assert not webhook_reads, "the webhook subscriber read the configurations"
    assert len(statements) <= 10, statements


def test_a_step_takes_two_connections_and_trusts_none_after_the_provider_call(
    app: Flask, quiet_job: tuple[uuid.UUID, int]
) -> None:
    """Each checkout is a pre-ping round trip. The lock's connection carries the
    transaction that follows it at once (three checkouts became two); the one
    after the provider call, which may have outlived the connection, takes a
    pre-pinged connection from the pool as before, never the pinned one."""
    checkouts: list[int] = []

    def checkout(dbapi_connection: Any, *_: Any) -> None:
        checkouts.append(id(dbapi_connection))

    _second_step_observed(quiet_job, "checkout", checkout)
    assert len(checkouts) == 2, checkouts


def _second_step_observed(
    quiet_job: tuple[uuid.UUID, int], engine_event: str, listener: Callable[..., None]
) -> None:
    """Runs the job's first step, then its second with ``listener`` on the
    engine's ``engine_event``: the second is a step in the middle of a job,
    with its predecessor's records already written."""
    from app import config
    from app.domain.outcomes import Proceed
    from app.domain.services.execution import run_step
    from app.persistence.database import db

    job_id, generation = quiet_job
    settings = config.current()
    assert isinstance(run_step(job_id, generation, "validate_config", settings), Proceed)
    event.listen(db.engine, engine_event, listener)
    try:
        outcome = run_step(job_id, generation, "create_database", settings)
    finally:
        event.remove(db.engine, engine_event, listener)
    assert isinstance(outcome, Proceed)
