"""Completes the OpenAPI document flask-smorest derives from the views: stable
operationIds, the errors every operation can answer (as problem details), the
headers the API reads and sets, the event stream's media type and /oauth/*.

These are rules over the whole API, so they live here once rather than as a
decorator repeated on every view; tests/e2e/test_api_fuzz.py holds the running
server to the result.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from apispec import BasePlugin
from flask import Flask, Response
from flask_smorest import Api
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule

from app.api.oauth_doc import OAUTH_PATHS, SECURITY_SCHEMES
from app.api.problems import PROBLEM_MEDIA_TYPE, ProblemSchema, from_http_exception

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_CONTENT = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}

# Stable names for generated clients; a new operation without one gets a derived id.
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("post", "/api/provision-department"): "provisionDepartment",
    ("get", "/api/provision-status/{provisioning_id}"): "getProvisionStatus",
    ("post", "/api/provision-status/{provisioning_id}/cancel"): "cancelJob",
    ("delete", "/api/deprovision/{department_id}"): "deprovisionDepartment",
    ("get", "/api/departments"): "listDepartments",
    ("get", "/api/departments/{department_id}"): "getDepartment",
    ("patch", "/api/departments/{department_id}"): "updateDepartment",
    ("post", "/api/departments/{department_id}/repair"): "repairDepartment",
    ("get", "/api/departments/{department_id}/history"): "getDepartmentHistory",
    ("get", "/api/departments/{department_id}/health"): "getDepartmentHealth",
    ("get", "/api/departments/{department_id}/latest-job"): "getLatestJob",
    ("get", "/api/provision-status/{provisioning_id}/events"): "streamJobEvents",
    ("post", "/api/provision-status/{provisioning_id}/events/ticket"): "createStreamTicket",
    ("get", "/api/audit"): "listAuditRecords",
    ("get", "/api/webhooks/deliveries"): "listWebhookDeliveries",
    ("get", "/api/metrics"): "getProvisioningMetrics",
}
# Not rate limited (app/api/limits.py exemptions), so never a 429.
UNLIMITED = frozenset({"getProvisionStatus", "streamJobEvents"})
RETRY_AFTER = {
    "description": "seconds to wait before retrying",
    "schema": {"type": "integer", "minimum": 0},
}
HEADERS: dict[str, dict[str, Any]] = {
    "Location": {
        "description": "the job's status URL",
        "required": True,
        "schema": {"type": "string", "format": "uri"},
    },
    "Link": {
        "description": 'RFC 8288 links to the first, prev, next and last pages (rel="...")',
        "required": True,
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": "validator of this representation, for If-Match",
        "required": True,
        "schema": {"type": "string"},
    },
}
IDEMPOTENCY_KEY = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "description": "The same key and body replay the first answer; another body is a 422",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}
IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": False,
    "description": "An ETag from GET: if the department changed since, 412 and no change",
    "schema": {"type": "string"},
}


def operation_id(method: str, path: str) -> str:
    known = OPERATION_IDS.get((method, path))
    if known:
        return known
    words = re.findall(r"[A-Za-z0-9]+", path.replace("/api/", "/"))
    return method + "".join(word[:1].upper() + word[1:] for word in words)


class ContractPlugin(BasePlugin):
    """Runs after flask-smorest's plugins, on each operation they produced."""

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **_: Any
    ) -> None:
        if not path or not operations or not path.startswith("/api/"):
            return
        for method, operation in operations.items():
            if method == "parameters" or not isinstance(operation, dict):
                continue
            operation.setdefault("operationId", operation_id(method, path))
            _complete(method, path, operation)


def _complete(method: str, path: str, operation: dict[str, Any]) -> None:
    responses: dict[Any, Any] = operation.setdefault("responses", {})
    parameters = operation.setdefault("parameters", [])
    op_id = operation["operationId"]
    _add_errors(responses, path, op_id)
    for code, response in list(responses.items()):
        if isinstance(response, dict):
            _complete_response(int(code), response, parameters)
    if op_id == "provisionDepartment":
        parameters.append(IDEMPOTENCY_KEY)
    if op_id == "getDepartment":
        _headers(responses, 200)["ETag"] = HEADERS["ETag"]
    if op_id == "updateDepartment":
        parameters.append(IF_MATCH)
        responses["412"] = "PRECONDITION_FAILED"
    if op_id == "streamJobEvents":
        _response(responses, 200)["content"] = {"text/event-stream": {"schema": {"type": "string"}}}


def _add_errors(responses: dict[Any, Any], path: str, op_id: str) -> None:
    """Every /api operation needs a token (401) and a role or scope (403); a path
    with an id can name something that does not exist (404); limited ones 429."""
    standard = {401: "UNAUTHORIZED", 403: "FORBIDDEN"}
    if "{" in path:
        standard[404] = "NOT_FOUND"
    if op_id not in UNLIMITED:
        standard[429] = "TOO_MANY_REQUESTS"
    for code, name in standard.items():
        if code not in responses and str(code) not in responses:
            responses[str(code)] = name


def _complete_response(code: int, response: dict[str, Any], parameters: list[Any]) -> None:
    """Errors documented by description only get the problem schema; every 202
    says where to follow the job; list pages carry Link."""
    if code >= 400 and "content" not in response:
        response["content"] = PROBLEM_CONTENT
    if code == 202:
        response.setdefault("headers", {})["Location"] = HEADERS["Location"]
    if code == 200 and any(p.get("name") == "page" for p in parameters if isinstance(p, dict)):
        response.setdefault("headers", {})["Link"] = HEADERS["Link"]
    if code in (429, 503):
        response.setdefault("headers", {})["Retry-After"] = RETRY_AFTER


def _response(responses: dict[Any, Any], code: int) -> dict[str, Any]:
    key = code if code in responses else str(code)
    response = responses.setdefault(key, {"description": "OK"})
    assert isinstance(response, dict)  # our own success responses are inline
    return response


def _headers(responses: dict[Any, Any], code: int) -> dict[str, Any]:
    headers: dict[str, Any] = _response(responses, code).setdefault("headers", {})
    return headers


def _error_extras(status: int) -> dict[str, Any]:
    """Headers that come with some error statuses wherever they are answered."""
    if status in (429, 503):
        return {"headers": {"Retry-After": RETRY_AFTER}}
    if status == 401:
        return {"headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}}
    return {}


class ContractApi(Api):
    """flask-smorest's Api, answering and documenting errors as problem details
    and completing the document with ContractPlugin and /oauth/*."""

    ERROR_SCHEMA = ProblemSchema

    def __init__(self, app: Flask) -> None:
        super().__init__(app, spec_kwargs={"extra_plugins": [ContractPlugin()]})
        self.spec.components.schema("Problem", schema=ProblemSchema)
        for name, scheme in SECURITY_SCHEMES.items():
            self.spec.components.security_scheme(name, scheme)
        for path, operations in OAUTH_PATHS.items():
            # flask-smorest's FlaskPlugin turns a werkzeug rule into the path.
            self.spec.path(rule=Rule(path), operations=operations)

    def _register_responses(self) -> None:
        """flask-smorest documents every status's response as application/json."""
        for status in HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["content"] = PROBLEM_CONTENT
                response.update(_error_extras(status))
            self.spec.components.response(status.name, response, lazy=True)
        default = {"description": "Default error response", "content": PROBLEM_CONTENT}
        self.spec.components.response("DEFAULT_ERROR", default, lazy=True)

    def handle_http_exception(self, error: HTTPException) -> Response:
        return from_http_exception(error)
