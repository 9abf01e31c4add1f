"""dataRetention enforced on a real tenant schema (issue 10): backdated rows go
when they pass the department's retention, a PATCH that shortens it takes
effect at the next run, the deleting is done as the tenant's own role, and each
run shows in the metrics and the audit log."""

from __future__ import annotations

import re
from typing import Any

import requests
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import API_PORT, TEST_DB, Stack, department_payload
from tests.e2e.conftest import submit, wait_for_job
from tests.support import tenant_db

TENANTS_DB = f"{TEST_DB}_tenants"
# name: (conversation started, its messages' ages), in days ago
CONVERSATIONS = {
    "old": (100, (100, 99)),
    "mid": (40, (40,)),
    "recent": (10, (10,)),
    "new": (0, (50, 0)),
}
WATCH_DELETES = """
CREATE TABLE deleted_by (tbl text, as_session name, as_current name);
CREATE FUNCTION note_delete() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO deleted_by VALUES (TG_TABLE_NAME, session_user, current_user);
  RETURN OLD;
END $f$;
CREATE TRIGGER note_delete BEFORE DELETE ON conversations
  FOR EACH ROW EXECUTE FUNCTION note_delete();
CREATE TRIGGER note_delete BEFORE DELETE ON messages
  FOR EACH ROW EXECUTE FUNCTION note_delete();
"""


def _tenant(department_id: str, env: dict[str, str]) -> Any:
    password = tenant_db.department_password(department_id, env["SECRETS_KEY"])
    return tenant_db.connect_as_tenant(department_id, password, TENANTS_DB)


def _backdate(department_id: str, env: dict[str, str]) -> None:
    conn = _tenant(department_id, env)
    with conn.cursor() as cur:
        cur.execute(WATCH_DELETES)
        for name, (started, messages) in CONVERSATIONS.items():
            cur.execute(
                "INSERT INTO conversations (caller, started_at)"
                " VALUES (%s, now() - make_interval(days => %s)) RETURNING id",
                (name, started),
            )
            conversation = cur.fetchone()[0]
            for age in messages:
                cur.execute(
                    "INSERT INTO messages (conversation_id, speaker, content, created_at)"
                    " VALUES (%s, 'caller', %s, now() - make_interval(days => %s))",
                    (conversation, f"{name} {age}", age),
                )
    conn.close()


def _left(department_id: str, env: dict[str, str]) -> tuple[list[str], list[str]]:
    conn = _tenant(department_id, env)
    with conn.cursor() as cur:
        cur.execute("SELECT caller FROM conversations ORDER BY started_at")
        conversations = [row[0] for row in cur.fetchall()]
        cur.execute("SELECT content FROM messages ORDER BY created_at")
        messages = [row[0] for row in cur.fetchall()]
        cur.execute("SELECT DISTINCT as_session, as_current FROM deleted_by")
        deleters = set(cur.fetchall())
    conn.close()
    role, _ = tenant_db.names(department_id)
    assert deleters <= {(role, role)}, deleters  # only ever the tenant itself
    return conversations, messages


def _run_retention(app: Flask, department_id: str) -> str:
    return _run_retention_all(app)[department_id]


def _run_retention_all(app: Flask) -> dict[str, str]:
    """The beat task, sent to the real worker as beat sends it: one line per department."""
    results = app.extensions["celery"].send_task("provisioning.enforce_retention").get(timeout=60)
    return {line.split(":", 1)[0]: line for line in results}


def _deleted_rows() -> dict[str, float]:
    text = requests.get(f"http://127.0.0.1:{API_PORT}/metrics", timeout=10).text
    found = re.findall(
        r'^provisioning_retention_deleted_rows_total\{table="(\w+)"\} ([\d.e+]+)$', text, re.M
    )
    return {table: float(value) for table, value in found}


def _patch_retention(
    client: FlaskClient, headers: dict[str, str], department_id: str, value: str
) -> None:
    response = client.patch(
        f"/api/departments/{department_id}", headers=headers, json={"dataRetention": value}
    )
    assert response.status_code == 202, response.get_json()
    assert wait_for_job(str(response.get_json()["provisioningId"]))["status"] == "completed"


def test_conversation_data_goes_when_it_passes_the_departments_retention(
    app: Flask, live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    env = live_stack.env
    payload = department_payload(dataRetention="90d")
    assert wait_for_job(submit(client, admin_headers, payload))["status"] == "completed"
    department_id = str(payload["departmentId"])
    _backdate(department_id, env)
    metrics_before = _deleted_rows()

    assert "'conversations': 1, 'messages': 2" in _run_retention(app, department_id)
    assert _left(department_id, env) == (
        ["mid", "recent", "new"],
        ["new 50", "mid 40", "recent 10", "new 0"],
    )

    _patch_retention(client, admin_headers, department_id, "30d")
    # The 40-day conversation, and the 50-day message of a newer conversation.
    assert "'conversations': 1, 'messages': 2" in _run_retention(app, department_id)
    assert _left(department_id, env) == (["recent", "new"], ["recent 10", "new 0"])

    _patch_retention(client, admin_headers, department_id, "1w")
    assert "'conversations': 1, 'messages': 1" in _run_retention(app, department_id)
    assert _left(department_id, env) == (["new"], ["new 0"])
    assert "'conversations': 0, 'messages': 0" in _run_retention(app, department_id)

    metrics_after = _deleted_rows()
    grew = {t: metrics_after.get(t, 0) - metrics_before.get(t, 0) for t in metrics_after}
    assert grew == {"conversations": 3, "messages": 5}
    audit = client.get(
        f"/api/audit?departmentId={department_id}&action=retention", headers=admin_headers
    ).get_json()["records"]
    removed = [(r["outcome"], r["details"]["removed"], r["details"]["retention"]) for r in audit]
    assert removed == [  # newest first; the run that removed nothing left no row
        ("ok", {"conversations": 1, "messages": 1}, "1w"),
        ("ok", {"conversations": 1, "messages": 2}, "30d"),
        ("ok", {"conversations": 1, "messages": 2}, "90d"),
    ]
    assert {r["actor"] for r in audit} == {"beat:retention"}


def test_a_tenant_that_blocks_deletion_fails_alone_and_is_reported(
    app: Flask, live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    env = live_stack.env
    stubborn, compliant = (department_payload(dataRetention="30d") for _ in range(2))
    for payload in (stubborn, compliant):
        assert wait_for_job(submit(client, admin_headers, payload))["status"] == "completed"
        _backdate(str(payload["departmentId"]), env)
    conn = _tenant(str(stubborn["departmentId"]), env)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $f$ BEGIN RAISE EXCEPTION 'keeping my data'; END $f$;"
            "CREATE TRIGGER refuse BEFORE DELETE ON messages FOR EACH STATEMENT"
            " EXECUTE FUNCTION refuse()"
        )
    conn.close()

    ran = _run_retention_all(app)
    assert "keeping my data" in ran[str(stubborn["departmentId"])]
    assert "'conversations': 2, 'messages': 4" in ran[str(compliant["departmentId"])]
    assert len(_left(str(stubborn["departmentId"]), env)[0]) == 4  # nothing half-deleted
    audit = client.get(
        f"/api/audit?departmentId={stubborn['departmentId']}&action=retention",
        headers=admin_headers,
    ).get_json()["records"]
    assert [r["outcome"] for r in audit][:1] == ["failed"]
    assert "keeping my data" in audit[0]["details"]["error"]
