"""Request and response schemas for provisioning (the seed's field names)."""

from __future__ import annotations

from marshmallow import Schema, fields

from app import config
from app.api.common_schemas import JobAcceptedSchema
from app.api.doc_fields import JOB_KINDS, JOB_STATUSES, STEP_STATUSES, one_of, timestamp
from app.domain import department
from app.domain.department import ConfigRules
from app.domain.kinds import StepAction


class DepartmentConfigSchema(department.DepartmentConfigSchema):
    """The request body: the domain's configuration rules under the current settings."""

    def rules(self) -> ConfigRules:
        return ConfigRules.of(config.current())


class ProvisionAcceptedSchema(JobAcceptedSchema):
    deploymentUrl = fields.String()
    dashboardUrl = fields.String()


class JobStepSchema(Schema):
    name = fields.String()
    action = one_of(tuple(StepAction), metadata={"description": "what the job does to it"})
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
    traceId = fields.String(
        allow_none=True,
        metadata={"description": "OpenTelemetry trace id of the job (32 hex digits)"},
    )
    progress = fields.Dict(
        metadata={
            "description": "percentage, and per component (database, oauth, docker, "
            "railway, n8n, gateway): pending, in_progress, completed, "
            "failed, rolling_back, rolled_back or skipped"
        }
    )
    currentStep = fields.String()
    queuePosition = fields.Integer(
        allow_none=True,
        metadata={
            "description": "while the job waits for a place among the MAX_ACTIVE_JOBS "
            "running ones: 1 for the next to start; null once it runs"
        },
    )
    startedAt = timestamp(allow_none=True)
    estimatedCompletion = timestamp(allow_none=True)
    completedAt = timestamp(allow_none=True)
    error = fields.Nested(JobErrorSchema, allow_none=True)
    steps = fields.List(fields.Nested(JobStepSchema))
    logs = fields.List(fields.String())


class DeprovisionAcceptedSchema(JobAcceptedSchema):
    status = fields.String()  # the seed's upper-case DEPROVISIONING
    cleanupProgress = fields.Integer(
        metadata={"description": "percentage of the cleanup done (0-100), as the original service"}
    )
    cleanupComponents = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": "per component (database, oauth, docker, railway, n8n, gateway)"},
    )


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


class CancelAcceptedSchema(JobAcceptedSchema):
    status = one_of(["cancelling"])


class DeprovisionArgsSchema(Schema):
    finalCopy = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Keep an encrypted copy of the tenant schema for "
            "FINAL_COPY_RETENTION_DAYS, restorable with `flask provisioning final-copies`"
        },
    )
    confirm = fields.String(
        metadata={
            "description": "The departmentId, when confirmation "
            "is required (DEPROVISION_REQUIRE_CONFIRM)"
        }
    )
