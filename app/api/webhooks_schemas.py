"""Schemas for the webhook deliveries endpoint."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.api.common_schemas import DEPARTMENT_ID, PageArgs, PageSchema
from app.api.doc_fields import JOB_KINDS, one_of, timestamp

DELIVERY_STATUSES = ("pending", "retrying", "delivered", "failed", "refused")


class DeliveryListArgs(PageArgs):
    departmentId = fields.String(validate=DEPARTMENT_ID)
    provisioningId = fields.UUID()
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))


class AttemptSchema(Schema):
    number = fields.Integer()
    at = timestamp()
    outcome = fields.String(
        metadata={"description": "delivered, http_error, network_error or refused"}
    )
    address = fields.String(allow_none=True, metadata={"description": "the IP connected to"})
    statusCode = fields.Integer(allow_none=True)
    durationMs = fields.Float(allow_none=True)
    error = fields.String(allow_none=True)


class DeliverySchema(Schema):
    id = fields.Integer()
    eventId = fields.String()
    eventType = fields.String()
    provisioningId = fields.String()
    departmentId = fields.String()
    kind = one_of(JOB_KINDS, allow_none=True)
    previousState = fields.String(allow_none=True)
    state = fields.String(allow_none=True)
    url = fields.String()
    status = one_of(DELIVERY_STATUSES)
    attempts = fields.Integer()
    lastStatusCode = fields.Integer(allow_none=True)
    lastError = fields.String(allow_none=True)
    createdAt = timestamp()
    nextAttemptAt = timestamp(allow_none=True)
    finishedAt = timestamp(allow_none=True)
    attemptLog = fields.List(fields.Nested(AttemptSchema))


class DeliveryListSchema(PageSchema):
    deliveries = fields.List(fields.Nested(DeliverySchema))
