"""What one status read costs the state database (issue 16).

A status read used to lazy-load the department and the steps (a round trip
each) and, while the job was in flight, recompute every step's median over all
completed steps ever recorded: its cost grew with the history. Now it is one
statement for the job with its department and steps and one for the log tail;
the medians come from a per-process cache.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from tests.conftest import department_payload, new_department_id
from tests.e2e.conftest import submit, wait_for_job
from tests.e2e.test_faults import wait_for_step_status


class StatementLog:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements.append(statement)


def _statements_of(call: Any) -> list[str]:
    from app.persistence.database import db

    log = StatementLog()
    event.listen(db.engine, "before_cursor_execute", log)
    try:
        call()
    finally:
        event.remove(db.engine, "before_cursor_execute", log)
    return log.statements


def _with_window(statements: list[str]) -> int:
    return sum("percentile_cont" in s for s in statements)


def test_status_of_an_in_flight_job_reads_no_history(
    client: FlaskClient, admin_headers: dict[str, str], faults: Any, app: Flask
) -> None:
    from app import config
    from app.domain.services.queries import job_view

    department_id = new_department_id()
    faults.arm(department_id, "workflows.create", mode="delay", seconds=15, times=1)
    job_id = submit(client, admin_headers, department_payload(department_id))
    wait_for_step_status(job_id, "deploy_workflows", "in_progress", timeout=240)

    views: list[dict[str, Any]] = []
    reads = [
        _statements_of(lambda: views.append(job_view(uuid.UUID(job_id), config.current()) or {}))
        for _ in range(5)
    ]
    assert all(v["status"] == "deploying_workflows" for v in views), views[-1]["status"]
    assert all(v["estimatedCompletion"] for v in views)
    # At most the first read (cold cache) computes the medians; every read is the
    # job statement plus the log tail, whatever the history holds.
    assert sum(_with_window(r) for r in reads) <= 1, reads
    assert [len(r) - _with_window(r) for r in reads] == [2] * 5, reads
    assert wait_for_job(job_id)["status"] == "completed"


def test_a_status_read_sends_no_begin_commit_or_isolation_change(
    client: FlaskClient, admin_headers: dict[str, str], app: Flask, monkeypatch: Any
) -> None:
    """Five round trips per read were three: BEGIN and COMMIT around the two
    SELECTs, which under READ COMMITTED add no consistency (each statement has
    its own snapshot), and SQLAlchemy's AUTOCOMMIT option costs two SETs instead."""
    from psycopg2.extensions import TRANSACTION_STATUS_IDLE

    from app.persistence.database import db

    job_id = submit(client, admin_headers, department_payload(new_department_id()))
    assert wait_for_job(job_id)["status"] == "completed"
    isolation_sets: list[object] = []
    original = db.engine.dialect.set_isolation_level
    monkeypatch.setattr(
        db.engine.dialect, "set_isolation_level",
        lambda conn, level: (isolation_sets.append(level), original(conn, level))[1],
    )  # fmt: skip
    outside_a_transaction: list[bool] = []

    def check(conn: Any, *_: Any) -> None:
        raw = conn.connection.dbapi_connection
        idle = raw.get_transaction_status() == TRANSACTION_STATUS_IDLE
        outside_a_transaction.append(bool(raw.autocommit) and idle)

    event.listen(db.engine, "before_cursor_execute", check)
    try:
        response = client.get(f"/api/provision-status/{job_id}", headers=admin_headers)
    finally:
        event.remove(db.engine, "before_cursor_execute", check)
    assert response.status_code == 200 and response.get_json()["status"] == "completed"
    assert outside_a_transaction == [True, True], outside_a_transaction
    assert not isolation_sets, isolation_sets
