"""Provisioning jobs: submit, watch, deprovision."""

from __future__ import annotations

import uuid
from typing import Any

from flask import jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint

from app import config
from app.api.audit import audit_endpoints
from app.api.auth import actor, admin_required, ensure_department_access, reader_required
from app.api.errors import fail
from app.api.limits import limiter, user_or_ip
from app.api.provisioning_schemas import (
    CancelAcceptedSchema,
    DepartmentConfigSchema,
    DeprovisionAcceptedSchema,
    DeprovisionArgsSchema,
    ProvisionAcceptedSchema,
    ProvisionPlanSchema,
    ProvisionQuerySchema,
    ProvisionStatusSchema,
)
from app.api.tenant_redaction import for_caller
from app.domain.services import lifecycle, planning, provisioning, queries

MAX_IDEMPOTENCY_KEY = 200  # the column's size
blp = Blueprint(
    "provisioning",
    __name__,
    url_prefix="/api",
    description="Provision and deprovision departments, and follow their jobs",
)
# Submits and deprovisions are audited whatever their outcome, refusals included.
audit_endpoints(
    blp, {"ProvisionDepartment": "provision", "Deprovision": "deprovision", "CancelJob": "cancel"}
)


def status_url(job_id: uuid.UUID) -> str:
    """A path, as the original service answers: its clients prefix their base URL."""
    return f"/api/provision-status/{job_id}"


def accepted_body(submission: provisioning.Submission) -> dict[str, Any]:
    settings = config.current()
    message = (
        "Department provisioning initiated"  # the original's wording (it said "deprovisioning")
        if submission.created
        else "A provisioning job for this department is already in progress"
    )
    return {
        "provisioningId": submission.job_id,
        "departmentId": submission.department_id,
        "status": submission.state.lower(),
        "message": message,
        "statusUrl": status_url(submission.job_id),
        "deploymentUrl": f"{settings.GATEWAY_PUBLIC_URL.rstrip('/')}/departments/"
        f"{submission.department_id}/",
        "dashboardUrl": f"{settings.base_url}/dashboard/{submission.department_id}",
    }


def _provision_limit() -> str:
    return config.current().PROVISION_RATE_LIMIT


@blp.route("/provision-department")
class ProvisionDepartment(MethodView):
    # The last decorator runs first: auth, then the quota, charged to the caller
    # (a stranger's refused request must not spend an admin's quota).
    decorators = [
        limiter.limit(_provision_limit, key_func=user_or_ip, override_defaults=True),
        admin_required,
    ]

    @blp.arguments(DepartmentConfigSchema)
    @blp.arguments(ProvisionQuerySchema, location="query", as_kwargs=True)
    @blp.response(202, ProvisionAcceptedSchema)
    @blp.alt_response(200, schema=ProvisionPlanSchema, description="The plan (dryRun=true)")
    @blp.alt_response(409, description="The department is already ACTIVE")
    def post(self, payload: dict[str, Any], dryRun: bool = False) -> Any:
        """Provision a department (asynchronous; follow statusUrl)

        An `Idempotency-Key` header makes retries of this call safe: the same key
        and body return the first response again. `dryRun=true` answers 200 with
        the plan and changes nothing anywhere.
        """
        if dryRun:
            return jsonify(
                ProvisionPlanSchema().dump(planning.plan_provisioning(payload, config.current()))
            )
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
            fail(422, message=f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
        try:
            replay = provisioning.replay_for(key, payload) if key else None
        except provisioning.IdempotencyMismatch as exc:
            fail(422, message=str(exc))
        if replay is not None:
            return replay.response, replay.status_code, replay.headers
        try:
            submission = provisioning.submit_provisioning(
                payload, actor(), settings=config.current()
            )
        except provisioning.Conflict as exc:
            fail(409, message=str(exc))
        body = ProvisionAcceptedSchema().dump(accepted_body(submission))
        headers = {"Location": body["statusUrl"]}
        if key:
            provisioning.remember_response(key, payload, 202, body, headers)
        return body, 202, headers


@blp.route("/provision-status/<uuid:provisioning_id>")
class ProvisionStatus(MethodView):
    decorators = [reader_required, limiter.exempt]

    @blp.response(200, ProvisionStatusSchema)
    def get(self, provisioning_id: uuid.UUID) -> dict[str, Any]:
        """A job's state, per-component progress, error and log"""
        view = queries.job_view(provisioning_id, config.current())
        if view is None:
            fail(404, message=f"provisioning job {provisioning_id} not found")
        ensure_department_access(view["departmentId"])
        return for_caller(view)


@blp.route("/provision-status/<uuid:provisioning_id>/cancel")
class CancelJob(MethodView):
    decorators = [admin_required]

    @blp.response(202, CancelAcceptedSchema)
    @blp.alt_response(404, description="Unknown job")
    @blp.alt_response(409, description="The job already ended or is already undoing its work")
    def post(self, provisioning_id: uuid.UUID) -> Any:
        """Cancel a job: it stops at the next safe point, rolls back, and ends CANCELLED"""
        try:
            submission = lifecycle.request_cancel(provisioning_id, actor())
        except provisioning.NotFound as exc:
            fail(404, message=str(exc))
        except provisioning.Conflict as exc:
            fail(409, message=str(exc))
        body = {
            "provisioningId": submission.job_id,
            "departmentId": submission.department_id,
            "status": "cancelling",
            "statusUrl": status_url(submission.job_id),
            "message": "The job stops at the next safe point, then rolls back",
        }
        return body, 202, {"Location": body["statusUrl"]}


@blp.route("/deprovision/<department_id:department_id>")
class Deprovision(MethodView):
    decorators = [admin_required]

    @blp.response(202, DeprovisionAcceptedSchema)
    @blp.alt_response(404, description="Unknown department")
    @blp.alt_response(
        409, description="A job is in flight, deletion protection is on, or already deprovisioned"
    )
    @blp.alt_response(422, description="Confirmation required")
    @blp.arguments(DeprovisionArgsSchema, location="query", as_kwargs=True)
    def delete(
        self, department_id: str, confirm: str | None = None, finalCopy: bool = False
    ) -> Any:
        """Remove every resource of a department, in reverse order, as a tracked job

        With DEPROVISION_REQUIRE_CONFIRM on, `confirm` (query, or a JSON body
        `{"confirm": ...}`) must equal the departmentId. `finalCopy=true` (query or
        body) keeps an encrypted copy of the tenant schema, restorable for
        FINAL_COPY_RETENTION_DAYS. A department with
        deletion protection answers 409.
        """
        given = request.get_json(silent=True) or {}
        final_copy = finalCopy or given.get("finalCopy") is True
        try:
            submission = provisioning.request_deprovision(
                department_id,
                actor(),
                settings=config.current(),
                confirm=confirm or given.get("confirm"),
                final_copy=final_copy,
            )
        except provisioning.ConfirmationRequired as exc:
            fail(422, message=str(exc), errors={"json": {"confirm": [str(exc)]}})
        except provisioning.NotFound as exc:
            fail(404, message=str(exc))
        except provisioning.Conflict as exc:
            fail(409, message=str(exc))
        view = queries.job_view(submission.job_id, config.current()) or {}
        progress = dict(view.get("progress", {}))
        body = {
            "provisioningId": submission.job_id,
            "departmentId": department_id,
            "status": "DEPROVISIONING",
            # The original service's wording and shape: clients parse both.
            "message": "Department deprovisioning initiated"
            if submission.created
            else "Department deprovisioning already in progress",
            "statusUrl": status_url(submission.job_id),
            "cleanupProgress": progress.pop("percentage", 0),
            "cleanupComponents": progress,
        }
        return body, 202, {"Location": body["statusUrl"]}
