"""The audit trail: reading it (admins), and recording API actions into it.

``audit_endpoints`` hooks a blueprint so that each mapped view's mutating
requests by authenticated callers are recorded whatever their outcome,
including refusals by role, validation or rate limits, without the views
themselves knowing. Unauthenticated requests are only counted.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_jwt_extended import get_jwt
from flask_smorest import Blueprint

from app.api.audit_schemas import AuditListArgs, AuditListSchema
from app.api.auth import admin_required
from app.api.http_headers import paginated
from app.domain.services import audit

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

blp = Blueprint("audit", __name__, url_prefix="/api", description="Who did what, and how it ended")


@blp.route("/audit")
class AuditTrail(MethodView):
    decorators = [admin_required]

    @blp.arguments(AuditListArgs, location="query")
    @blp.response(200, AuditListSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Audit records, newest first (filter by departmentId, from/to, action, actor)"""
        criteria = audit.AuditFilter(
            department_id=args.get("departmentId"),
            since=args.get("since"),
            until=args.get("until"),
            action=args.get("action"),
            actor=args.get("actor"),
        )
        rows, total = audit.list_actions(criteria, args["page"], args["perPage"])
        return paginated("records", rows, total, args)


def outcome_of(status: int) -> str:
    if status == 202:
        return "accepted"
    if 200 <= status < 300:
        return "ok"
    if status == 409:
        return "conflict"
    if 400 <= status < 500:
        return f"rejected:{status}"
    return "failed"


def _actor() -> str | None:
    """The token's email if the request got as far as verifying one."""
    try:
        return get_jwt().get("email")
    except RuntimeError:
        return None


def _target(body: dict[str, Any] | None) -> str:
    view_args = request.view_args or {}
    department_id = view_args.get("department_id")
    if department_id is None and isinstance(body, dict):
        department_id = body.get("departmentId")
    target = department_id or view_args.get("provisioning_id")  # cancel names a job
    return str(target)[:300] if target else "-"


def _details(response: Response) -> dict[str, Any]:
    details: dict[str, Any] = {"method": request.method, "path": request.path}
    if request.query_string:
        details["query"] = request.query_string.decode("utf-8", "replace")[:300]
    answer = response.get_json(silent=True) if response.is_json else None
    if isinstance(answer, dict):
        if "provisioningId" in answer:
            details["provisioningId"] = str(answer["provisioningId"])
        if isinstance(answer.get("message"), str):
            details["message"] = answer["message"][:500]
        errors = answer.get("errors")
        if isinstance(errors, dict):
            # Field names only: the rejected values may be anything.
            details["fields"] = sorted(
                str(name) for group in errors.values() if isinstance(group, dict) for name in group
            )
    return details


def audit_endpoints(blueprint: Blueprint, actions: dict[str, str]) -> None:
    """Records every mutating request to the views named in ``actions``
    (view endpoint name -> audit action)."""

    @blueprint.after_request
    def _record(response: Response) -> Response:
        endpoint = (request.endpoint or "").rsplit(".", 1)[-1]
        action = actions.get(endpoint)
        if action is None or request.method not in MUTATING:
            return response
        caller = _actor()
        if caller is None:
            # Nobody authenticated: a stranger's request is counted (app/api/edge.py),
            # never parsed nor written down, or anyone could fill the trail and the disk.
            return response
        # A refused body (413) is never read, not even for the record.
        body = request.get_json(silent=True) if response.status_code != 413 else None
        audit.record_action(
            action,
            _target(body),
            outcome_of(response.status_code),
            caller,
            request.remote_addr,
            _details(response),
        )
        return response
