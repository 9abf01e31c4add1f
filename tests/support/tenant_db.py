"""Acting as a tenant in PostgreSQL, and watching roles, for the isolation tests."""

from __future__ import annotations

from typing import Any

import psycopg2
from sqlalchemy import select


def department_password(department_id: str, secrets_key: str) -> str:
    from app.persistence.database import db
    from app.persistence.models import Department
    from app.persistence.secrets import DepartmentSecrets

    with db.transaction() as session:
        pk = session.scalar(select(Department.id).where(Department.department_id == department_id))
    assert pk is not None, department_id
    password = DepartmentSecrets(pk, secrets_key).get("database_password")
    assert password, f"no database password stored for {department_id}"
    return password


def names(department_id: str) -> tuple[str, str]:
    slug = department_id.replace("-", "_")
    return f"{slug}_role", f"{slug}_tenant"


def connect_as_tenant(department_id: str, password: str, dbname: str) -> Any:
    """A session of the tenant's own (what its agent, or an attacker holding
    its credentials, gets)."""
    role, _ = names(department_id)
    conn = psycopg2.connect(
        host="127.0.0.1", user=role, password=password, dbname=dbname, connect_timeout=5
    )
    conn.autocommit = True
    return conn


def role_snapshot() -> dict[str, Any]:
    """Every role's attributes and every membership on the server."""
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb,"
                " rolcanlogin, rolreplication, rolbypassrls FROM pg_roles"
            )
            attributes = {row[0]: row[1:] for row in cur.fetchall()}
            cur.execute(
                "SELECT m.rolname, g.rolname, a.admin_option FROM pg_auth_members a"
                " JOIN pg_roles m ON m.oid = a.member JOIN pg_roles g ON g.oid = a.roleid"
            )
            memberships = set(cur.fetchall())
    finally:
        conn.close()
    return {"attributes": attributes, "memberships": memberships}


def gained(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What roles that existed before hold now and did not then (roles created
    or dropped meanwhile, e.g. by other test sessions, are not compared)."""
    found = []
    for role, attrs in after["attributes"].items():
        old = before["attributes"].get(role)
        if old is not None and old != attrs:
            found.append(f"{role}: attributes {old} -> {attrs}")
    for member, group, admin in after["memberships"] - before["memberships"]:
        if member in before["attributes"]:
            found.append(f"{member}: now member of {group} (admin option {admin})")
    return found
