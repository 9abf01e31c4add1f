"""URL converters: a path segment that cannot be a departmentId never reaches a view
(a NUL byte or ".." answers 404 instead of reaching SQL or a component)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api
from werkzeug.routing import BaseConverter

from app.domain.department import DEPARTMENT_ID_PATTERN


class DepartmentIdConverter(BaseConverter):
    regex = DEPARTMENT_ID_PATTERN


def _openapi(_: BaseConverter) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^{DEPARTMENT_ID_PATTERN}$"}


def init_converters(app: Flask, api: Api) -> None:
    """Before any blueprint is registered: rules compile when they are added."""
    app.url_map.converters["department_id"] = DepartmentIdConverter
    api.register_converter(DepartmentIdConverter, _openapi)
