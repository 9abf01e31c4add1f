"""Schemas for the audit trail endpoint."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from app.api.common_schemas import DEPARTMENT_ID, PageArgs, PageSchema
from app.api.doc_fields import timestamp

# Query values reach SQL: bounded and printable, so odd input is a 422, not a 500.
PRINTABLE = validate.Regexp(r"^[^\x00-\x1f\x7f]*$")


class AuditListArgs(PageArgs):
    departmentId = fields.String(validate=DEPARTMENT_ID)
    # "from"/"to" are Python keywords, hence data_key.
    since = fields.AwareDateTime(
        data_key="from", default_timezone=UTC, metadata={"description": "inclusive, ISO 8601"}
    )
    until = fields.AwareDateTime(
        data_key="to", default_timezone=UTC, metadata={"description": "exclusive, ISO 8601"}
    )
    action = fields.String(validate=[validate.Length(max=40), PRINTABLE])
    actor = fields.String(validate=[validate.Length(max=320), PRINTABLE])

    @post_load
    def _in_utc(self, data: dict[str, Any], **_: object) -> dict[str, Any]:
        """PostgreSQL refuses offsets beyond +-15:59 that ISO 8601 allows; UTC it is."""
        for key in ("since", "until"):
            if data.get(key) is not None:
                data[key] = data[key].astimezone(UTC)
        return data

    @validates_schema
    def _range(self, data: dict[str, object], **_: object) -> None:
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:  # type: ignore[operator]
            raise ValidationError("Must be later than 'from'.", "to")


class AuditRecordSchema(Schema):
    id = fields.Integer()
    at = timestamp()
    actor = fields.String(allow_none=True, metadata={"description": "JWT email or cli:<user>"})
    sourceIp = fields.String(allow_none=True)
    action = fields.String()
    target = fields.String()
    departmentId = fields.String(allow_none=True)
    outcome = fields.String(
        metadata={"description": "accepted, ok, conflict, rejected:<reason>, failed"}
    )
    details = fields.Dict()


class AuditListSchema(PageSchema):
    records = fields.List(fields.Nested(AuditRecordSchema))
