"""Which incarnation of a department exists now (see Department.incarnation)."""

from __future__ import annotations

from sqlalchemy import select

from app.persistence.database import db
from app.persistence.models import Department


def current_incarnation(department_id: str) -> str | None:
    """None when no department of that id was ever recorded."""
    with db.transaction() as session:
        value = session.scalar(
            select(Department.incarnation).where(Department.department_id == department_id)
        )
    return str(value) if value is not None else None
