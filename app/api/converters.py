"""URL converters: a path segment that cannot be a departmentId never reaches a view
(a NUL byte or ".." answers 404 instead of reaching SQL or a component)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api
from werkzeug.routing import BaseConverter

DEPARTMENT_ID_REGEX = r"[a-z][a-z0-9-]{1,30}"


class DepartmentIdConverter(BaseConverter):
    regex = DEPARTMENT_ID_REGEX


def _openapi(_: BaseConverter) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^{DEPARTMENT_ID_REGEX}$"}


def init_converters(app: Flask, api: Api) -> None:
    """Before any blueprint is registered: rules compile when they are added."""
    app.url_map.converters["department_id"] = DepartmentIdConverter
    api.register_converter(DepartmentIdConverter, _openapi)
