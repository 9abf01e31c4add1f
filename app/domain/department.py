"""A department's configuration and the rules it must follow, in one place.

The department-id rule is written here once; the API's request schema, its URL
converter, the providers (which refuse to put anything else into SQL, URLs or
gateway config), the dashboard and the audit log all use it. The settings that
vary by deployment (allowed regions, private callback addresses) are passed in
as ``ConfigRules``, so this module imports no layer (see ``.importlinter``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from app.domain import catalogue
from app.domain.webhook_security import url_refusal

DEPARTMENT_ID_PATTERN = r"[a-z][a-z0-9-]{1,30}"
DEPARTMENT_ID = re.compile(DEPARTMENT_ID_PATTERN)
RETENTION = re.compile(r"^([1-9][0-9]{0,3})([dwmy])\Z")
CPU = re.compile(r"^(?:[0-9]+(?:\.[0-9]{1,3})?|[1-9][0-9]{0,4}m)\Z")
MEMORY = re.compile(r"^([1-9][0-9]{0,5})(Mi|Gi)\Z")
DOMAIN = re.compile(r"^(?=.{1,253}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z")
TEXT = re.compile(r"^[^\x00-\x1f\x7f]+$")  # printable: no control characters

# The health check of the department's agent, whichever runtime runs it (a local
# process or a Railway service). The name is the original service's, kept because
# API clients read it; code refers to AGENT_CHECK, never to the string.
AGENT_CHECK = "railway_agent"


def is_department_id(value: object) -> bool:
    """The one department-id rule (fullmatch: no trailing newline slips through)."""
    return isinstance(value, str) and DEPARTMENT_ID.fullmatch(value) is not None


class RuleSettings(Protocol):
    """The settings ``ConfigRules`` is read from (``app.config.Settings``)."""

    @property
    def REGIONS(self) -> Sequence[str]: ...

    @property
    def WEBHOOK_ALLOW_PRIVATE(self) -> bool: ...


@dataclass(frozen=True)
class ConfigRules:
    """What a configuration is checked against that depends on the deployment."""

    regions: tuple[str, ...]
    allow_private_callbacks: bool = False

    @classmethod
    def of(cls, settings: RuleSettings) -> ConfigRules:
        return cls(tuple(settings.REGIONS), settings.WEBHOOK_ALLOW_PRIVATE)


class InvalidConfig(ValueError):
    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(f"configuration not valid: {errors}")
        self.errors = errors


@dataclass(frozen=True)
class DepartmentConfig:
    """A validated configuration, typed (stored and sent as its JSON dict)."""

    department_id: str
    department_name: str
    business_type: str
    workflows: tuple[str, ...]
    data_retention: str
    region: str
    cpu: str
    memory: str
    admin_email: str
    google_workspace_domain: str
    enabled_tools: tuple[str, ...] = ()
    custom_config: dict[str, Any] = field(default_factory=dict)
    callback_url: str | None = None

    @classmethod
    def parse(cls, payload: dict[str, Any], rules: ConfigRules) -> DepartmentConfig:
        """Raises ``InvalidConfig`` with per-field errors."""
        try:
            data = DepartmentConfigSchema(rules=rules).load(payload)
        except ValidationError as exc:
            raise InvalidConfig(exc.normalized_messages()) from None
        return cls(
            department_id=data["departmentId"],
            department_name=data["departmentName"],
            business_type=data["businessType"],
            workflows=tuple(data["workflows"]),
            data_retention=data["dataRetention"],
            region=data["region"],
            cpu=data["resources"]["cpu"],
            memory=data["resources"]["memory"],
            admin_email=data["adminEmail"],
            google_workspace_domain=data["googleWorkspaceDomain"],
            enabled_tools=tuple(data["enabledTools"]),
            custom_config=dict(data["customConfig"]),
            callback_url=data.get("callbackUrl"),
        )

    @property
    def scopes(self) -> list[str]:
        return catalogue.scopes_for(list(self.enabled_tools))


def no_trailing_newline(value: str) -> None:
    """The patterns end in "$" (the OpenAPI spec needs ECMA regexes), and
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

    def __init__(self, *args: Any, rules: ConfigRules | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rules = rules

    def rules(self) -> ConfigRules:
        """The deployment's rules; the API's subclass reads the current settings."""
        if self._rules is None:
            raise RuntimeError("DepartmentConfigSchema needs rules=ConfigRules(...)")
        return self._rules

    departmentId = fields.String(
        required=True,
        validate=[
            validate.Regexp(f"^{DEPARTMENT_ID_PATTERN}$", error="Must match {regex}."),
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
        validate=validate.Length(max=2000),
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
        regions = self.rules().regions
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

    @validates("callbackUrl")
    def _callback(self, value: str, **_: Any) -> None:
        """Refuses at request time what the URL names literally (metadata hosts,
        link-local, and private/loopback unless allowed); names are checked
        again, resolved, at every delivery."""
        reason = url_refusal(value, self.rules().allow_private_callbacks)
        if reason is not None:
            raise ValidationError(f"Webhooks may not be sent there: {reason}.")

    @validates_schema
    def _email_in_domain(self, data: dict[str, Any], **_: Any) -> None:
        email, domain = data.get("adminEmail"), data.get("googleWorkspaceDomain")
        if email and domain and email.rsplit("@", 1)[-1].lower() != domain:
            raise ValidationError("Must be an address in googleWorkspaceDomain.", "adminEmail")
