"""Schemas for the webhook deliveries endpoint, and the callbackUrl check."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from app import config
from app.api.audit_schemas import DEPARTMENT_ID, MAX_PAGE
from app.api.doc_fields import JOB_KINDS, one_of, timestamp
from app.domain.webhook_security import url_refusal

DELIVERY_STATUSES = ("pending", "retrying", "delivered", "failed", "refused")


def callback_url_allowed(value: str) -> None:
    """Refuses at request time what the URL names literally (metadata hosts,
    link-local, and private/loopback unless WEBHOOK_ALLOW_PRIVATE); names are
    checked again, resolved, at every delivery."""
    reason = url_refusal(value, config.current().WEBHOOK_ALLOW_PRIVATE)
    if reason is not None:
        raise ValidationError(f"Webhooks may not be sent there: {reason}.")


class DeliveryListArgs(Schema):
    departmentId = fields.String(validate=DEPARTMENT_ID)
    provisioningId = fields.UUID()
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    perPage = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


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


class DeliveryListSchema(Schema):
    deliveries = fields.List(fields.Nested(DeliverySchema))
    total = fields.Integer()
    page = fields.Integer()
    perPage = fields.Integer()
    total = fields.Integer()
    page = fields.Integer()
    perPage = fields.Integer()
