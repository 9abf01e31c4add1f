"""Provisioning KPIs over a time window (the Prometheus exposition is /metrics)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, post_load

from app.api.auth import admin_required
from app.api.doc_fields import timestamp
from app.domain.services.queries import iso
from app.observability.kpis import Window, provisioning_kpis

blp = Blueprint(
    "metrics", __name__, url_prefix="/api", description="Provisioning KPIs over a time window"
)

WINDOW = re.compile(r"^(\d{1,6})([mhdw])$")
WINDOW_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_WINDOW = timedelta(days=366)


def parse_window(value: str) -> timedelta:
    match = WINDOW.match(value)
    if not match:
        raise ValidationError("use a number and m, h, d or w, e.g. 24h or 7d")
    length = timedelta(**{WINDOW_UNITS[match.group(2)]: int(match.group(1))})
    if not timedelta(minutes=1) <= length <= MAX_WINDOW:
        raise ValidationError("must be between 1m and 366d")
    return length


class MetricsArgs(Schema):
    window = fields.String(
        load_default="24h", metadata={"description": "e.g. 30m, 24h, 7d, 4w (1m to 366d)"}
    )

    @post_load
    def _length(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        try:
            data["length"] = parse_window(data["window"])
        except ValidationError as exc:
            raise ValidationError(exc.messages, field_name="window") from exc
        return data


class RecentProvisioningSchema(Schema):
    provisioningId = fields.String()
    departmentId = fields.String()
    status = fields.String(metadata={"enum": ["completed", "failed", "cancelled"]})
    completedAt = timestamp()
    seconds = fields.Float(allow_none=True, metadata={"description": "submission to end"})


class ProvisioningKpisSchema(Schema):
    total = fields.Integer(metadata={"description": "provision jobs submitted in the window"})
    completed = fields.Integer()
    failed = fields.Integer()
    cancelled = fields.Integer()
    inFlight = fields.Integer()
    successRate = fields.Float(
        allow_none=True, metadata={"description": "completed / (completed + failed)"}
    )
    averageSeconds = fields.Float(
        allow_none=True, metadata={"description": "submission to completion, completed jobs"}
    )
    p95Seconds = fields.Float(allow_none=True)
    rollbackRate = fields.Float(
        allow_none=True, metadata={"description": "rolled-back jobs / ended jobs"}
    )
    peakConcurrent = fields.Integer(
        metadata={"description": "most provision jobs in flight at one moment of the window"}
    )
    recent = fields.List(
        fields.Nested(RecentProvisioningSchema),
        metadata={"description": "the latest finished provision jobs (up to 30), oldest first"},
    )


class MetricsSchema(Schema):
    window = fields.String()
    start = timestamp(data_key="from")
    end = timestamp(data_key="to")
    provisioning = fields.Nested(ProvisioningKpisSchema)


@blp.route("/metrics")
class Metrics(MethodView):
    decorators = [admin_required]

    @blp.arguments(MetricsArgs, location="query")
    @blp.response(200, MetricsSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Provisioning success rate, times, rollback rate and peak concurrency"""
        window = Window.ending(datetime.now(UTC), args["length"])
        return {
            "window": args["window"],
            "start": iso(window.start),
            "end": iso(window.end),
            "provisioning": provisioning_kpis(window),
        }
