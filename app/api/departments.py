"""Departments: the fleet list and live health."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app import config
from app.api.audit import audit_endpoints
from app.api.auth import (
    actor,
    admin_required,
    ensure_department_access,
    reader_required,
    scoped_department,
)
from app.api.common_schemas import JobAcceptedSchema, PageArgs, PageSchema
from app.api.doc_fields import DEPARTMENT_STATUSES, one_of, timestamp
from app.api.errors import fail
from app.api.http_headers import etag_of, if_match_allows, paginated
from app.api.provisioning import status_url
from app.api.provisioning_schemas import DepartmentConfigSchema
from app.api.tenant_redaction import for_caller
from app.domain.services import health, lifecycle, provisioning, queries
from app.domain.states import DepartmentStatus

blp = Blueprint("departments", __name__, url_prefix="/api", description="Departments")
audit_endpoints(
    blp,
    {
        "DepartmentResource": "update",
        "DepartmentRepair": "repair",
        "DepartmentCredentialRotation": "rotate_credentials",
    },
)


class DepartmentListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf([s.value for s in DepartmentStatus]))
    includeDeprovisioned = fields.Boolean(
        load_default=False,
        metadata={"description": "DEPROVISIONED departments are left out unless asked for"},
    )


class DepartmentSchema(Schema):
    id = fields.String()
    departmentId = fields.String()
    departmentName = fields.String()
    status = one_of(DEPARTMENT_STATUSES)
    railwayDeploymentUrl = fields.String(allow_none=True)
    deploymentUrl = fields.String(allow_none=True)
    createdAt = timestamp()
    deletionProtection = fields.Boolean()
    configVersion = fields.Integer()
    drift = fields.Dict(allow_none=True)


class DepartmentListSchema(PageSchema):
    departments = fields.List(fields.Nested(DepartmentSchema))


class DepartmentUpdateSchema(Schema):
    """Any of these; omitted fields keep their value."""

    departmentName = fields.String()
    workflows = fields.List(fields.String())
    enabledTools = fields.List(fields.String())
    resources = fields.Dict()
    dataRetention = fields.String()
    customConfig = fields.Dict()
    callbackUrl = fields.String()
    deletionProtection = fields.Boolean()


class ConfigVersionSchema(Schema):
    version = fields.Integer()
    config = fields.Dict()
    diff = fields.Dict()
    actor = fields.String(allow_none=True)
    provisioningId = fields.String(allow_none=True)
    createdAt = timestamp()


class ConfigHistorySchema(Schema):
    departmentId = fields.String()
    versions = fields.List(fields.Nested(ConfigVersionSchema))


class HealthCheckSchema(Schema):
    name = fields.String()
    healthy = fields.Boolean()
    latency = fields.Integer(metadata={"description": "whole milliseconds (as the original)"})
    detail = fields.String()


class DepartmentHealthSchema(Schema):
    departmentId = fields.String()
    healthy = fields.Boolean()
    checks = fields.List(fields.Nested(HealthCheckSchema))
    lastCheck = timestamp()


@blp.route("/departments")
class Departments(MethodView):
    decorators = [reader_required]

    @blp.arguments(DepartmentListArgs, location="query")
    @blp.response(200, DepartmentListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List departments (paginated; filter by status)"""
        rows, total = queries.list_departments(
            args.get("status"),
            args["page"],
            args["perPage"],
            scoped_department(),
            include_deprovisioned=args["includeDeprovisioned"],
        )
        return paginated("departments", rows, total, args)


def _current(department_id: str) -> tuple[dict[str, Any], str]:
    """The department as GET shows it, and its ETag."""
    view = queries.department_view(department_id)
    if view is None:
        fail(404, message=f"department {department_id} not found")
    body = DepartmentSchema().dump(view)
    return body, etag_of(body)


@blp.route("/departments/<department_id:department_id>")
class DepartmentResource(MethodView):
    @reader_required
    @blp.response(200, DepartmentSchema)
    def get(self, department_id: str) -> Any:
        """One department; its `ETag` makes a following PATCH conditional (`If-Match`)"""
        ensure_department_access(department_id)
        body, etag = _current(department_id)
        return body, 200, {"ETag": etag}

    @admin_required
    @blp.arguments(DepartmentUpdateSchema)
    @blp.response(202, JobAcceptedSchema)
    @blp.alt_response(200, schema=DepartmentSchema, description="Nothing needed a job")
    @blp.alt_response(404, description="Unknown department")
    @blp.alt_response(409, description="A job is in flight, or the department is not ACTIVE")
    def patch(self, changes: dict[str, Any], department_id: str) -> Any:
        """Change a department: a tracked job applies only the difference

        On failure the job restores the previous configuration. Changing only
        `deletionProtection` applies at once. With `If-Match` (the `ETag` of a GET),
        a department changed since then answers 412 and nothing is changed.
        """
        if not if_match_allows(_current(department_id)[1]):
            fail(412, message="the department changed since it was read (If-Match); GET it again")
        protection = changes.pop("deletionProtection", None)
        current = queries.department_config(department_id)
        if current is None:
            fail(404, message=f"department {department_id} not found")
        merged = {**current, **changes}
        errors = DepartmentConfigSchema().validate(merged)
        if errors:
            fail(422, message="invalid configuration", errors={"json": errors})
        try:
            submission = lifecycle.request_update(
                department_id, merged, protection, actor(), settings=config.current()
            )
        except (provisioning.Conflict, provisioning.NotFound) as exc:
            fail(409 if isinstance(exc, provisioning.Conflict) else 404, message=str(exc))
        if submission is None:
            return jsonify(queries.department_view(department_id))
        return _accepted(submission, "Update started")


@blp.route("/departments/<department_id:department_id>/repair")
class DepartmentRepair(MethodView):
    decorators = [admin_required]

    @blp.response(202, JobAcceptedSchema)
    @blp.alt_response(404, description="Unknown department")
    @blp.alt_response(409, description="Healthy, a job in flight, or not ACTIVE/DEGRADED")
    def post(self, department_id: str) -> Any:
        """Re-create only the resources whose health checks fail"""
        try:
            failing = lifecycle.failing_checks(department_id, config.current())
            if not failing:
                fail(409, message=f"department {department_id} is healthy; nothing to repair")
            submission = lifecycle.request_repair(
                department_id, failing, actor(), settings=config.current()
            )
        except provisioning.NotFound as exc:
            fail(404, message=str(exc))
        except provisioning.Conflict as exc:
            fail(409, message=str(exc))
        return _accepted(submission, f"Repairing: {', '.join(failing)}")


@blp.route("/departments/<department_id:department_id>/rotate-credentials")
class DepartmentCredentialRotation(MethodView):
    decorators = [admin_required]

    @blp.response(202, JobAcceptedSchema)
    @blp.alt_response(404, description="Unknown department")
    @blp.alt_response(409, description="A job in flight, or the department is not ACTIVE")
    def post(self, department_id: str) -> Any:
        """Issue a new tenant database password and OAuth client secret, hand them
        to the running agent, then revoke the old ones (no downtime)"""
        from app.domain.services.credentials import request_rotation

        try:
            submission = request_rotation(department_id, actor(), settings=config.current())
        except provisioning.NotFound as exc:
            fail(404, message=str(exc))
        except provisioning.Conflict as exc:
            fail(409, message=str(exc))
        return _accepted(submission, "Credential rotation started")


@blp.route("/departments/<department_id:department_id>/history")
class DepartmentHistory(MethodView):
    decorators = [reader_required]

    @blp.response(200, ConfigHistorySchema)
    def get(self, department_id: str) -> dict[str, Any]:
        """The department's configuration versions: who, when, what changed"""
        ensure_department_access(department_id)
        versions = queries.config_history(department_id)
        if versions is None:
            fail(404, message=f"department {department_id} not found")
        return {"departmentId": department_id, "versions": versions}


def _accepted(submission: provisioning.Submission, message: str) -> Any:
    url = status_url(submission.job_id)
    body = {
        "provisioningId": submission.job_id,
        "departmentId": submission.department_id,
        "status": submission.state.lower(),
        "message": message,
        "statusUrl": url,
    }
    return body, 202, {"Location": url}


@blp.route("/departments/<department_id:department_id>/health")
class DepartmentHealth(MethodView):
    decorators = [reader_required]

    @blp.response(200, DepartmentHealthSchema)
    def get(self, department_id: str) -> dict[str, Any]:
        """Run the department's health checks now, against the real components"""
        ensure_department_access(department_id)
        result = health.department_health(department_id, config.current())
        if result is None:
            fail(404, message=f"department {department_id} not found")
        return for_caller(result)  # check details may quote what a component said
