"""Live job progress: Server-Sent Events, the tickets that open them, latest job."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate

from app import config
from app.api import stream_tickets
from app.api.auth import (
    Forbidden,
    current_claims,
    ensure_department_access,
    reader_required,
    scoped_department,
)
from app.api.doc_fields import JOB_KINDS, JOB_STATUSES, one_of, timestamp
from app.api.errors import fail
from app.api.limits import limiter
from app.api.tenant_redaction import tenant_redactor
from app.domain.services import live, queries
from app.observability import sse
from app.observability.stream import STREAM_ID

blp = Blueprint(
    "live",
    __name__,
    url_prefix="/api",
    description="Follow a job live: Server-Sent Events of its state, steps and log",
)


class StreamArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    ticket = fields.String(
        metadata={"description": "A stream ticket (POST .../events/ticket), for EventSource"}
    )
    lastEventId = fields.String(
        validate=validate.Regexp(STREAM_ID),
        metadata={"description": "Resume after this event id (the Last-Event-ID header wins)"},
    )


class TicketSchema(Schema):
    ticket = fields.String()
    expiresAt = timestamp()
    streamUrl = fields.String()


class LatestJobSchema(Schema):
    departmentId = fields.String()
    provisioningId = fields.String()
    kind = one_of(JOB_KINDS)
    status = one_of(JOB_STATUSES)
    statusUrl = fields.String()
    eventsUrl = fields.String()


@dataclass(frozen=True)
class Grant:
    role: str
    department_id: str | None  # None: every department (admin)


def events_url(job_id: uuid.UUID | str) -> str:
    return f"{config.current().base_url}/api/provision-status/{job_id}/events"


@reader_required
def _bearer_grant() -> Grant:
    return Grant(role=current_claims()["role"], department_id=scoped_department())


def _ticket_grant(raw: str, job_id: uuid.UUID) -> Grant:
    try:
        ticket = stream_tickets.verify(raw, str(job_id))
    except stream_tickets.InvalidTicket as exc:
        fail(401, message=str(exc))
    scope = ticket.department_id if ticket.role != "admin" else None
    return Grant(role=ticket.role, department_id=scope)


def _resume_point(args: dict[str, Any]) -> str:
    """EventSource re-sends Last-Event-ID itself; a fresh one (new ticket) uses the query."""
    header = request.headers.get("Last-Event-ID", "").strip()
    if header and not STREAM_ID.match(header):
        fail(400, message="Last-Event-ID is not an event id of this stream")
    return header or args.get("lastEventId") or "0"


def _job_for(grant: Grant, job_id: uuid.UUID) -> live.JobBrief:
    brief = live.job_brief(job_id)
    if brief is None:
        fail(404, message=f"provisioning job {job_id} not found")
    if grant.department_id is not None and grant.department_id != brief.department_id:
        raise Forbidden("this token is scoped to another department")
    return brief


def _event_stream(job_id: uuid.UUID, after: str, grant: Grant) -> Response:
    if not sse.slots.try_acquire():
        fail(503, message="too many live streams open; retry shortly", headers={"Retry-After": "5"})
    response = Response(
        sse.follow(
            str(job_id),
            after,
            lambda: live.job_brief(job_id),
            # Department tokens see log lines and errors redacted, as in the status view.
            scrub=tenant_redactor().strings if grant.department_id is not None else None,
        ),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    # The WSGI server closes the response whether or not it was ever iterated.
    response.call_on_close(sse.slots.release)
    return response


@blp.route("/provision-status/<uuid:provisioning_id>/events")
class JobEvents(MethodView):
    decorators = [limiter.exempt]

    @blp.arguments(StreamArgs, location="query")
    @blp.response(200, content_type="text/event-stream")
    @blp.alt_response(401, description="No valid bearer token or stream ticket")
    @blp.alt_response(403, description="A department token for another department")
    @blp.alt_response(404, description="Unknown job")
    @blp.alt_response(503, description="This API process has no stream slot free")
    def get(self, args: dict[str, Any], provisioning_id: uuid.UUID) -> Response:
        """Server-Sent Events of a job: `state`, `step`, `log`, then one `end`

        Each event's `id` is its Redis Stream id; reconnect with `Last-Event-ID`
        (or `?lastEventId=`) to resume after it. Authenticate with the bearer
        header or, from a browser, with `?ticket=` from `POST .../events/ticket`.
        A stream closes after a few minutes; reconnecting continues it.
        """
        ticket = args.get("ticket")
        grant = _ticket_grant(ticket, provisioning_id) if ticket else _bearer_grant()
        _job_for(grant, provisioning_id)
        return _event_stream(provisioning_id, _resume_point(args), grant)


@blp.route("/provision-status/<uuid:provisioning_id>/events/ticket")
class JobEventsTicket(MethodView):
    decorators = [reader_required]

    @blp.response(200, TicketSchema)
    @blp.alt_response(404, description="Unknown job")
    def post(self, provisioning_id: uuid.UUID) -> Any:
        """A ticket (valid about a minute, this job only) to open its event stream

        Use it as `?ticket=`: the bearer token itself never goes into a URL.
        """
        brief = live.job_brief(provisioning_id)
        if brief is None:
            fail(404, message=f"provisioning job {provisioning_id} not found")
        ensure_department_access(brief.department_id)
        ticket, expires_at = stream_tickets.issue(
            str(provisioning_id), brief.department_id, current_claims()
        )
        body = {
            "ticket": ticket,
            "expiresAt": queries.iso(datetime.fromtimestamp(expires_at, UTC)),
            "streamUrl": events_url(provisioning_id),
        }
        return body, 200, {"Cache-Control": "no-store"}


@blp.route("/departments/<department_id:department_id>/latest-job")
class LatestJob(MethodView):
    decorators = [reader_required]

    @blp.response(200, LatestJobSchema)
    @blp.alt_response(404, description="Unknown department, or no job yet")
    def get(self, department_id: str) -> dict[str, Any]:
        """The department's current or most recent job"""
        ensure_department_access(department_id)
        job_id = queries.latest_job_id(department_id)
        brief = live.job_brief(job_id) if job_id else None
        if brief is None:
            fail(404, message=f"no job for department {department_id}")
        return {
            "departmentId": department_id,
            "provisioningId": brief.job_id,
            "kind": brief.kind,
            "status": brief.state.lower(),
            "statusUrl": f"{config.current().base_url}/api/provision-status/{brief.job_id}",
            "eventsUrl": events_url(brief.job_id),
        }
