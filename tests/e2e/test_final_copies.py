"""Deprovision keeps a last copy if asked: exported before the schema is dropped,
encrypted under SECRETS_KEY, listed and restorable by the CLI, purged by beat
once expired."""

from __future__ import annotations

import time

import psycopg2
from cryptography.fernet import Fernet, MultiFernet
from flask.testing import FlaskClient

from tests.conftest import TEST_DB, Stack, department_payload
from tests.e2e.conftest import submit, wait_for_job
from tests.support import keys, probes

TENANTS_DB = f"{TEST_DB}_tenants"


def _as_tenant(department_id: str, *statements: str) -> list[tuple]:
    conn = psycopg2.connect(host="127.0.0.1", user=f"{department_id}_role", dbname=TENANTS_DB)
    rows: list[tuple] = []
    with conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
            if cur.description is not None:
                rows = cur.fetchall()
    conn.close()
    return rows


def _copies(department_id: str) -> list[tuple]:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id::text, status, ciphertext, expires_at > now() + interval '29 days'"
            " FROM final_copies WHERE department_id = %s ORDER BY created_at",
            (department_id,),
        )
        rows = cur.fetchall()
    conn.close()
    return rows


def _deprovision(
    client: FlaskClient, headers: dict[str, str], department_id: str, query: str
) -> None:
    response = client.delete(f"/api/deprovision/{department_id}{query}", headers=headers)
    assert response.status_code == 202, response.get_json()
    assert wait_for_job(str(response.get_json()["provisioningId"]))["status"] == "completed"


def test_a_deprovision_with_a_final_copy_is_undone_by_the_cli(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    assert wait_for_job(submit(client, admin_headers, payload))["status"] == "completed"
    _as_tenant(
        department_id,
        "INSERT INTO conversations (caller, summary) VALUES ('+1555', 'kept across deprovision')",
        "CREATE TABLE notes (body text)",  # the tenant's own table, not a baseline one
        "INSERT INTO notes VALUES ('mine')",
    )

    _deprovision(client, admin_headers, department_id, "?finalCopy=true")
    assert not probes.tenant_schema_exists(TENANTS_DB, department_id)
    [(copy_id, status, ciphertext, long_lived)] = _copies(department_id)
    assert status == "stored" and long_lived
    assert b"kept across deprovision" not in bytes(ciphertext)
    ring = MultiFernet([Fernet(k.encode()) for k in live_stack.env["SECRETS_KEY"].split(",")])
    assert ring.decrypt(bytes(ciphertext)).startswith(b"PGDMP")  # pg_dump's custom format

    listed = keys.flask(
        live_stack.env, "provisioning", "final-copies", "list", "--department", department_id
    )
    assert listed.returncode == 0 and f"{copy_id}  {department_id}" in listed.stdout, listed.stdout
    assert "stored" in listed.stdout

    restored = keys.flask(
        live_stack.env, "provisioning", "final-copies", "restore", copy_id, timeout=300
    )
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "healthy: true" in restored.stdout, restored.stdout
    assert _as_tenant(department_id, "SELECT summary FROM conversations") == [
        ("kept across deprovision",)
    ]
    assert _as_tenant(department_id, "SELECT body FROM notes") == [("mine",)]
    assert _copies(department_id)[0][1] == "restored"
    health = client.get(f"/api/departments/{department_id}/health", headers=admin_headers)
    assert health.get_json()["healthy"], health.get_json()

    # Without the flag, nothing is kept.
    _deprovision(client, admin_headers, department_id, "")
    assert len(_copies(department_id)) == 1


def test_expired_copies_are_refused_and_purged_by_beat(
    live_stack: Stack, client: FlaskClient, admin_headers: dict[str, str]
) -> None:
    payload = department_payload()
    department_id = payload["departmentId"]
    assert wait_for_job(submit(client, admin_headers, payload))["status"] == "completed"
    _deprovision(client, admin_headers, department_id, "?finalCopy=true")
    [(copy_id, status, _, _)] = _copies(department_id)
    assert status == "stored"

    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE final_copies SET expires_at = now() - interval '1 second' WHERE id = %s",
            (copy_id,),
        )
    conn.close()
    refused = keys.flask(live_stack.env, "provisioning", "final-copies", "restore", copy_id)
    assert refused.returncode != 0
    assert "expired" in refused.stderr or "no final copy" in refused.stderr, refused.stderr

    deadline = time.monotonic() + 30
    while _copies(department_id):
        assert time.monotonic() < deadline, "beat did not purge the expired copy"
        time.sleep(0.5)
