"""Request and response schemas for provisioning (the seed's field names)."""

from __future__ import annotations

import json
import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from app import config
from app.api.doc_fields import JOB_KINDS, JOB_STATUSES, STEP_STATUSES, one_of, timestamp
from app.api.webhooks_schemas import callback_url_allowed
from app.domain import catalogue

DEPARTMENT_ID = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
RETENTION = re.compile(r"^([1-9][0-9]{0,3})([dwmy])\Z")
CPU = re.compile(r"^(?:[0-9]+(?:\.[0-9]{1,3})?|[1-9][0-9]{0,4}m)\Z")
MEMORY = re.compile(r"^([1-9][0-9]{0,5})(Mi|Gi)\Z")
DOMAIN = re.compile(r"^(?=.{1,253}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z")
TEXT = re.compile(r"^[^\x00-\x1f\x7f]+$")  # printable: no control characters


def is_department_id(value: str) -> bool:
    return DEPARTMENT_ID.fullmatch(value) is not None and not value.endswith("\n")


def no_trailing_newline(value: str) -> None:
    """The patterns above end in "$" (the OpenAPI spec needs ECMA regexes), and
    Python's "$" also matches before a final newline."""
    if value.endswith("\n"):
        raise ValidationError("Must not end with a newline.")


def unique_list(value: list[str]) -> None:
    if len(set(value)) != len(value):
        raise ValidationError("Items must be unique.")


class ResourcesSchema(Schema):
    cpu = fields.String(required=True, metadata={"example": "0.5"})
    memory = fields.String(required=True, metadata={"example": "512Mi"})

    @validates("cpu")
    def _cpu(self, value: str, **_: Any) -> None:
        if not CPU.match(value):
            raise ValidationError("Use cores like '0.5' or '1', or millicores like '500m'.")
        millicores = catalogue.cpu_millicores(value)
        if not catalogue.MIN_CPU_MILLICORES <= millicores <= catalogue.MAX_CPU_MILLICORES:
            raise ValidationError("CPU must be between 100m and 8 cores.")

    @validates("memory")
    def _memory(self, value: str, **_: Any) -> None:
        if not MEMORY.match(value):
            raise ValidationError("Use a size like '512Mi' or '2Gi'.")
        if not catalogue.MIN_MEMORY_MIB <= catalogue.memory_mib(value) <= catalogue.MAX_MEMORY_MIB:
            raise ValidationError("Memory must be between 128Mi and 16Gi.")


class DepartmentConfigSchema(Schema):
    """A department's desired configuration; unknown fields are rejected."""

    departmentId = fields.String(
        required=True,
        validate=[
            validate.Regexp(DEPARTMENT_ID, error="Must match ^[a-z][a-z0-9-]{{1,30}}$."),
            no_trailing_newline,
        ],
        metadata={"example": "hr"},
    )
    departmentName = fields.String(
        required=True,
        validate=[validate.Length(1, 200), validate.Regexp(TEXT), no_trailing_newline],
        metadata={"example": "Human Resources"},
    )
    businessType = fields.String(
        required=True,
        validate=[validate.Length(1, 100), validate.Regexp(TEXT), no_trailing_newline],
        metadata={"example": "internal_services"},
    )
    workflows = fields.List(
        fields.String(validate=validate.OneOf(catalogue.WORKFLOWS)),
        required=True,
        validate=[validate.Length(1, len(catalogue.WORKFLOWS)), unique_list],
    )
    dataRetention = fields.String(required=True, metadata={"example": "90d"})
    region = fields.String(required=True, metadata={"example": "us-east"})
    resources = fields.Nested(ResourcesSchema, required=True)
    adminEmail = fields.Email(required=True, validate=validate.Length(max=254))
    googleWorkspaceDomain = fields.String(required=True, metadata={"example": "example.com"})
    enabledTools = fields.List(
        fields.String(validate=validate.OneOf(catalogue.TOOLS)),
        load_default=list,
        validate=unique_list,
    )
    customConfig = fields.Dict(keys=fields.String(), load_default=dict)
    callbackUrl = fields.Url(
        schemes={"http", "https"},
        require_tld=False,
        validate=[validate.Length(max=2000), callback_url_allowed],
        metadata={
            "description": "POSTed a signed event on every state change of this department's jobs"
        },
    )

    @validates("dataRetention")
    def _retention(self, value: str, **_: Any) -> None:
        if not RETENTION.match(value):
            raise ValidationError(
                "Use a number and a unit: d, w, m or y (e.g. '30d', '12w', '1y')."
            )
        days = catalogue.retention_days(value)
        if not catalogue.MIN_RETENTION_DAYS <= days <= catalogue.MAX_RETENTION_DAYS:
            raise ValidationError("Retention must be between 1 day and 10 years.")

    @validates("region")
    def _region(self, value: str, **_: Any) -> None:
        regions = config.current().REGIONS
        if value not in regions:
            raise ValidationError(f"Must be one of: {', '.join(regions)}.")

    @validates("googleWorkspaceDomain")
    def _domain(self, value: str, **_: Any) -> None:
        if not DOMAIN.match(value):
            raise ValidationError("Must be a lower-case domain name like 'example.com'.")

    @validates("customConfig")
    def _custom(self, value: dict[str, Any], **_: Any) -> None:
        if len(json.dumps(value)) > catalogue.MAX_CUSTOM_CONFIG_BYTES:
            raise ValidationError(
                f"Must be at most {catalogue.MAX_CUSTOM_CONFIG_BYTES} bytes as JSON."
            )

    @validates_schema
    def _email_in_domain(self, data: dict[str, Any], **_: Any) -> None:
        email, domain = data.get("adminEmail"), data.get("googleWorkspaceDomain")
        if email and domain and email.rsplit("@", 1)[-1].lower() != domain:
            raise ValidationError("Must be an address in googleWorkspaceDomain.", "adminEmail")


class ProvisionAcceptedSchema(Schema):
    provisioningId = fields.UUID()
    departmentId = fields.String()
    status = one_of(JOB_STATUSES)
    message = fields.String()
    statusUrl = fields.String()
    deploymentUrl = fields.String()
    dashboardUrl = fields.String()


class JobStepSchema(Schema):
    name = fields.String()
    action = fields.String()
    status = one_of(STEP_STATUSES)
    attempts = fields.Integer()
    compensationAttempts = fields.Integer()
    startedAt = timestamp(allow_none=True)
    finishedAt = timestamp(allow_none=True)
    durationSeconds = fields.Float(allow_none=True)
    error = fields.String(allow_none=True)
    outputs = fields.Dict()


class JobErrorSchema(Schema):
    step = fields.String(allow_none=True)
    attempt = fields.Integer(allow_none=True)
    message = fields.String()


class ProvisionStatusSchema(Schema):
    provisioningId = fields.UUID()
    departmentId = fields.String()
    kind = one_of(JOB_KINDS)
    status = one_of(JOB_STATUSES, metadata={"example": "deploying_workflows"})
    progress = fields.Dict(
        metadata={
            "description": "percentage, and per component (database, oauth, docker, "
            "railway, n8n, gateway): pending, in_progress, completed, "
            "failed, rolling_back, rolled_back or skipped"
        }
    )
    currentStep = fields.String()
    startedAt = timestamp(allow_none=True)
    estimatedCompletion = timestamp(allow_none=True)
    completedAt = timestamp(allow_none=True)
    error = fields.Nested(JobErrorSchema, allow_none=True)
    steps = fields.List(fields.Nested(JobStepSchema))
    logs = fields.List(fields.String())


class DeprovisionAcceptedSchema(Schema):
    provisioningId = fields.UUID()
    departmentId = fields.String()
    status = fields.String()
    message = fields.String()
    statusUrl = fields.String()
    cleanupProgress = fields.Dict()


class ProvisionQuerySchema(Schema):
    dryRun = fields.Boolean(
        load_default=False,
        metadata={"description": "Answer with the plan instead of provisioning; changes nothing"},
    )


class PlannedStepSchema(Schema):
    step = fields.String()
    state = fields.String()
    description = fields.String()
    resources = fields.Dict()
    exists = fields.Dict(
        allow_none=True,
        metadata={"description": "Which of the step's resources exist already (read-only probes)"},
    )


class ProvisionPlanSchema(Schema):
    dryRun = fields.Boolean()
    departmentId = fields.String()
    valid = fields.Boolean()
    errors = fields.Dict()
    wouldConflict = fields.String(allow_none=True)
    steps = fields.List(fields.Nested(PlannedStepSchema))


class CancelAcceptedSchema(Schema):
    provisioningId = fields.UUID()
    departmentId = fields.String()
    status = one_of(["cancelling"])
    message = fields.String()
    statusUrl = fields.String()


class DeprovisionArgsSchema(Schema):
    confirm = fields.String(
        metadata={
            "description": "The departmentId, when confirmation "
            "is required (DEPROVISION_REQUIRE_CONFIRM)"
        }
    )
