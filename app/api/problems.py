"""Every HTTP error as an RFC 9457 problem (``application/problem+json``).

Members: ``type`` (``about:blank``: the status code says it all), ``title`` (the
status phrase), ``status``, ``detail`` (what went wrong with this request),
``instance`` (the request path) and ``requestId``; validation errors keep their
per-field ``errors``. ``code`` and ``message`` repeat ``status`` and ``detail``
because clients of earlier releases read them (deprecated; removed in 2.0).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import marshmallow as ma
from flask import Flask, Response, g, has_request_context, json, request
from werkzeug.exceptions import HTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
BLANK = "about:blank"


def problem_body(
    status: int, detail: str | None = None, errors: Any = None, **extra: Any
) -> dict[str, Any]:
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {"type": BLANK, "title": title, "status": status}
    body["detail"] = detail or title
    if has_request_context():
        body["instance"] = request.path
        request_id = getattr(g, "request_id", None)
        if request_id:
            body["requestId"] = request_id
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    body["code"], body["message"] = status, body["detail"]
    return body


def problem(
    status: int,
    detail: str | None = None,
    errors: Any = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """The response for an error answered outside ``abort`` (auth, limits, 405...)."""
    response = Response(
        json.dumps(problem_body(status, detail, errors, **extra)),
        status=status,
        mimetype=PROBLEM_MEDIA_TYPE,
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_http_exception(exc: HTTPException) -> Response:
    """``abort(status, message=..., errors=..., headers=...)`` and werkzeug's own errors.

    A 500's description is werkzeug's generic text, never the exception's: internal
    errors must not leak details to the caller (they are logged instead).
    """
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    detail = data.get("message") or exc.description
    errors = data.get("errors", data.get("messages"))
    headers = dict(data.get("headers") or {})
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            headers.setdefault(name, value)
    return problem(status, detail, errors, headers)


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details (documentation; responses are built by ``problem``)."""

    type = ma.fields.String(
        metadata={"description": "URI of the problem type; about:blank: see status"}
    )
    title = ma.fields.String(metadata={"description": "the HTTP status phrase"})
    status = ma.fields.Integer(metadata={"description": "the HTTP status code"})
    detail = ma.fields.String(metadata={"description": "what went wrong with this request"})
    instance = ma.fields.String(metadata={"description": "the request path"})
    requestId = ma.fields.String(metadata={"description": "X-Request-ID of the request"})
    errors = ma.fields.Dict(
        metadata={"description": "validation errors per location, then per field"}
    )
    code = ma.fields.Integer(metadata={"description": "deprecated: same as status"})
    message = ma.fields.String(metadata={"description": "deprecated: same as detail"})


def init_problems(app: Flask) -> None:
    """For errors raised before or outside the API's blueprints (the docs, /metrics)."""
    app.register_error_handler(HTTPException, from_http_exception)
