"""The audit trail: every mutating action, by whom, from where, and its outcome.

Conventions for callers of ``record_action``:

- ``action``: a verb such as "provision", "deprovision", "cancel", "update",
  "repair", "cleanup", "retry", "sweep", "retention", "token.create".
- ``target``: the departmentId for department actions; otherwise a prefixed
  name ("job:<provisioningId>", "token:<email>", "jobs").
- ``outcome``: "accepted", "ok", "conflict", "rejected:<status or reason>",
  "failed".
- ``actor``: the JWT email, or "cli:<user>"; ``source_ip`` None outside HTTP.
- ``details``: anything else worth keeping, never a secret. A "departmentId"
  key there names the department when the target does not.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select

from app.domain.department import is_department_id
from app.persistence.audit_models import AuditRecord
from app.persistence.database import db

logger = logging.getLogger("provisioning.audit")


def _department_of(target: str, details: dict[str, Any]) -> str | None:
    named = details.get("departmentId")
    if is_department_id(named):
        return str(named)
    return target if is_department_id(target) else None


def _scrub(value: Any) -> Any:
    """PostgreSQL text and JSONB refuse NUL characters; junk requests carry them."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_scrub(str(k)): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _text(value: str | None, limit: int) -> str | None:
    return _scrub(value)[:limit] if value else None


def record_action(
    action: str,
    target: str,
    outcome: str,
    actor: str | None,
    source_ip: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Writes one audit row in its own transaction. Never raises: the action it
    describes has already happened (or been refused) and must not be undone by
    an audit outage, so a failure here is logged loudly instead."""
    try:
        # Whatever a caller passes, the record is kept (odd values as text).
        extra = _scrub(json.loads(json.dumps(details or {}, default=str)))
        with db.transaction() as session:
            session.add(
                AuditRecord(
                    action=_text(action, 40) or "-",
                    target=_text(target, 300) or "-",
                    department_id=_department_of(target, extra),
                    outcome=_text(outcome, 60) or "-",
                    actor=_text(actor, 320),
                    source_ip=_text(source_ip, 64),
                    details=extra,
                )
            )
    except Exception:
        logger.exception(
            "AUDIT RECORD LOST: action=%s target=%s outcome=%s actor=%s source_ip=%s",
            action,
            target,
            outcome,
            actor,
            source_ip,
        )


@dataclass(frozen=True)
class AuditFilter:
    department_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    actor: str | None = None


def _filtered(criteria: AuditFilter) -> Select[AuditRecord]:
    query = select(AuditRecord)
    if criteria.department_id:
        query = query.where(AuditRecord.department_id == criteria.department_id)
    if criteria.since:
        query = query.where(AuditRecord.at >= criteria.since)
    if criteria.until:
        query = query.where(AuditRecord.at < criteria.until)
    if criteria.action:
        query = query.where(AuditRecord.action == criteria.action)
    if criteria.actor:
        query = query.where(AuditRecord.actor == criteria.actor)
    return query


def audit_row(record: AuditRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "at": record.at.isoformat().replace("+00:00", "Z"),
        "actor": record.actor,
        "sourceIp": record.source_ip,
        "action": record.action,
        "target": record.target,
        "departmentId": record.department_id,
        "outcome": record.outcome,
        "details": record.details,
    }


def list_actions(
    criteria: AuditFilter, page: int, per_page: int
) -> tuple[list[dict[str, Any]], int]:
    """Newest first; ``until`` is exclusive so consecutive ranges do not overlap."""
    query = _filtered(criteria)
    with db.transaction() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(
            query.order_by(AuditRecord.at.desc(), AuditRecord.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
        return [audit_row(r) for r in rows], total
