"""Short-lived tickets that let a browser's EventSource open one job's stream.

EventSource cannot send an Authorization header, and the long-lived bearer
token must never appear in a URL (access logs, history, Referer). A ticket is
signed with a key derived from JWT_SECRET under its own salt, so it is not a
JWT and can never be replayed as a bearer token; it names one job and expires
within a minute. It is checked when a stream opens, not while it runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from app import config

SALT = "po.job-event-stream.v1"
TICKET_TTL_SECONDS = 60


class InvalidTicket(Exception):
    pass


@dataclass(frozen=True)
class Ticket:
    job_id: str
    department_id: str
    email: str
    role: str
    expires_at: float


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(config.current().JWT_SECRET, salt=SALT)


def issue(
    job_id: str, department_id: str, claims: dict[str, Any], ttl: float = TICKET_TTL_SECONDS
) -> tuple[str, float]:
    expires_at = time.time() + ttl
    payload = {
        "job": job_id,
        "dept": department_id,
        "email": claims.get("email"),
        "role": claims.get("role"),
        "exp": expires_at,
    }
    return _serializer().dumps(payload), expires_at


def verify(raw: str, job_id: str) -> Ticket:
    """The ticket's grant, or InvalidTicket (bad signature, expired, other job)."""
    try:
        payload = _serializer().loads(raw)
    except BadSignature as exc:
        raise InvalidTicket("invalid stream ticket") from exc
    if not isinstance(payload, dict) or float(payload.get("exp", 0)) < time.time():
        raise InvalidTicket("stream ticket has expired")
    if payload.get("job") != job_id:
        raise InvalidTicket("stream ticket is for another job")
    return Ticket(
        job_id=payload["job"],
        department_id=payload["dept"],
        email=str(payload.get("email")),
        role=str(payload.get("role")),
        expires_at=float(payload["exp"]),
    )
