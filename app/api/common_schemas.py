"""Schema pieces several endpoints share, declared once."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.api.doc_fields import JOB_STATUSES, one_of
from app.domain.department import DEPARTMENT_ID_PATTERN

# Query values reach SQL: bounded, so odd input is a 422, not a 500.
DEPARTMENT_ID = validate.Regexp(f"^{DEPARTMENT_ID_PATTERN}$")
# An offset beyond a bigint is a 500 from PostgreSQL, not a page.
MAX_PAGE = 100_000
MAX_PER_PAGE = 500


class PageArgs(Schema):
    """``page`` and ``perPage`` of a list endpoint."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    perPage = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PER_PAGE))


class PageSchema(Schema):
    """What a list answers besides its rows."""

    total = fields.Integer()
    page = fields.Integer()
    perPage = fields.Integer()


class JobAcceptedSchema(Schema):
    """A 202: the job was recorded and queued; follow it at ``statusUrl``."""

    provisioningId = fields.UUID()
    departmentId = fields.String()
    status = one_of(JOB_STATUSES)
    message = fields.String()
    statusUrl = fields.String()
