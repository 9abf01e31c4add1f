"""Process-wide logging: one JSON (or text) line per record, with context.

Every line carries ``requestId``, ``provisioningId``, ``departmentId`` and
``step`` (null where they do not apply). The request id comes from the HTTP
request (``X-Request-ID``, honoured or generated, echoed in the response) and
travels in Celery message headers, so the worker lines of a job started by a
request carry that request's id. Secrets are scrubbed by ``RedactingFilter``.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import IO, Any

from celery import signals
from flask import Flask, Response, g, request
from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from app.config import Settings
from app.observability.redaction import RedactingFilter, Redactor

REQUEST_ID_HEADER = "X-Request-ID"
CONTEXT_FIELDS = ("requestId", "provisioningId", "departmentId", "step")
# Honoured as given only if it cannot forge log structure or grow unbounded.
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
CELERY_HEADER = "request_id"

_context: ContextVar[dict[str, str | None] | None] = ContextVar("log_context", default=None)
http_logger = logging.getLogger("provisioning.http")


def bind(**fields: str | None) -> None:
    """Adds fields to this thread's (or task's) log context."""
    _context.set({**(_context.get() or {}), **fields})


def clear() -> None:
    _context.set(None)


def current_request_id() -> str | None:
    return (_context.get() or {}).get("requestId")


class ContextFilter(logging.Filter):
    """Gives every record the context fields, without overriding explicit extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get() or {}
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, context.get(name))
        span = trace.get_current_span().get_span_context()
        if span.is_valid:  # the job's trace: logs and spans found by the same id
            record.traceId = f"{span.trace_id:032x}"
            record.spanId = f"{span.span_id:016x}"
        return True


class TextFormatter(logging.Formatter):
    """Development format: the classic line, with the context appended when present."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name}={getattr(record, name)}"
            for name in CONTEXT_FIELDS
            if getattr(record, name, None)
        )
        return f"{line} [{context}]" if context else line


def _json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s %(process)d",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


def _text_formatter() -> logging.Formatter:
    return TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")


def log_format(settings: Settings) -> str:
    return settings.LOG_FORMAT or ("text" if settings.APP_ENV == "development" else "json")


def secret_literals(settings: Settings) -> list[str]:
    """The configured secrets themselves: redacted wherever they turn up."""
    from sqlalchemy.engine import make_url

    values = [
        settings.JWT_SECRET,
        settings.SECRETS_KEY,
        *settings.SECRETS_KEY.split(","),
        settings.N8N_API_KEY,
        settings.RAILWAY_API_TOKEN,
        settings.METRICS_TOKEN,
    ]
    for url in (settings.DATABASE_URL, settings.TENANT_DATABASE_URL, settings.REDIS_URL):
        if url:
            try:
                values.append(make_url(url).password or "")
            except Exception:  # noqa: S112 - a URL SQLAlchemy cannot parse has no password for us
                continue
    return [str(value) for value in values if value]


def build_handler(settings: Settings, stream: IO[str]) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.set_name("provisioning")
    handler.setFormatter(_json_formatter() if log_format(settings) == "json" else _text_formatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter(Redactor(secret_literals(settings))))
    return handler


def configure_logging(settings: Settings) -> None:
    """Installs (or replaces, when create_app runs again) our root handler."""
    handler = build_handler(settings, sys.stderr)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "provisioning":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.LOG_LEVEL.upper())


def init_request_ids(app: Flask) -> None:
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.teardown_request(lambda _exc: clear())


def _start_request() -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given if VALID_REQUEST_ID.match(given) else uuid.uuid4().hex
    g.request_started = time.monotonic()
    clear()
    bind(requestId=g.request_id)


def _finish_request(response: Response) -> Response:
    request_id = getattr(g, "request_id", None)
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    started = getattr(g, "request_started", None)
    elapsed_ms = round((time.monotonic() - started) * 1000, 1) if started else None
    # Scrapes and probes come every few seconds: keep them out of INFO.
    level = logging.DEBUG if request.path in ("/metrics",) else logging.INFO
    http_logger.log(
        level,
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "durationMs": elapsed_ms,
        },
    )
    return response


# --- Celery: the context of the task being run, and the request id across messages.


@signals.setup_logging.connect
def _keep_our_logging(**_: Any) -> None:
    """Connected at all, this stops Celery from replacing the root handler."""


@signals.before_task_publish.connect
def _propagate_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = current_request_id()
    if request_id and headers is not None:
        headers.setdefault(CELERY_HEADER, request_id)


@signals.task_prerun.connect
def _bind_task_context(
    task_id: str | None = None, task: Any = None, args: Any = None, **_: Any
) -> None:
    clear()
    name = getattr(task, "name", "") or ""
    fields: dict[str, str | None] = {"taskId": task_id}
    request_id = getattr(getattr(task, "request", None), CELERY_HEADER, None)
    if request_id:
        fields["requestId"] = str(request_id)
    if name.startswith("provisioning.") and args:
        fields["provisioningId"] = str(args[0])  # step tasks carry (job id, generation)
    if name.startswith(("provisioning.step.", "provisioning.compensate.")):
        fields["step"] = name.rsplit(".", 1)[-1]
    bind(**fields)


@signals.task_postrun.connect
def _unbind_task_context(**_: Any) -> None:
    clear()
