"""Departments: the fleet list and live health."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, validate

from app import config
from app.api.auth import ensure_department_access, reader_required, scoped_department
from app.domain.services import health, queries
from app.domain.states import DepartmentStatus

blp = Blueprint("departments", __name__, url_prefix="/api", description="Departments")


class DepartmentListArgs(Schema):
    status = fields.String(validate=validate.OneOf([s.value for s in DepartmentStatus]))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    perPage = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class DepartmentSchema(Schema):
    id = fields.String()
    departmentId = fields.String()
    departmentName = fields.String()
    status = fields.String()
    railwayDeploymentUrl = fields.String(allow_none=True)
    deploymentUrl = fields.String(allow_none=True)
    createdAt = fields.String()


class DepartmentListSchema(Schema):
    departments = fields.List(fields.Nested(DepartmentSchema))
    total = fields.Integer()
    page = fields.Integer()
    perPage = fields.Integer()


class HealthCheckSchema(Schema):
    name = fields.String()
    healthy = fields.Boolean()
    latency = fields.Float(metadata={"description": "milliseconds"})
    detail = fields.String()


class DepartmentHealthSchema(Schema):
    departmentId = fields.String()
    healthy = fields.Boolean()
    checks = fields.List(fields.Nested(HealthCheckSchema))
    lastCheck = fields.String()


@blp.route("/departments")
class Departments(MethodView):
    decorators = [reader_required]

    @blp.arguments(DepartmentListArgs, location="query")
    @blp.response(200, DepartmentListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List departments (paginated; filter by status)"""
        rows, total = queries.list_departments(
            args.get("status"), args["page"], args["perPage"], scoped_department()
        )
        return {
            "departments": rows,
            "total": total,
            "page": args["page"],
            "perPage": args["perPage"],
        }


@blp.route("/departments/<string:department_id>/health")
class DepartmentHealth(MethodView):
    decorators = [reader_required]

    @blp.response(200, DepartmentHealthSchema)
    def get(self, department_id: str) -> dict[str, Any]:
        """Run the department's health checks now, against the real components"""
        ensure_department_access(department_id)
        result = health.department_health(department_id, config.current())
        if result is None:
            abort(404, message=f"department {department_id} not found")
        return result
