"""Response fields whose OpenAPI type says more than "string": RFC 3339 timestamps
and closed sets of values. They dump values as given (already ISO strings or
exact words), so only the documented contract changes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from marshmallow import fields

from app.domain.kinds import JobKind
from app.domain.states import DepartmentStatus, JobState, StepStatus

# Every kind of job the orchestrator runs (Job.kind).
JOB_KINDS = tuple(kind.value for kind in JobKind)
# A job's `status` is its state in lower case.
JOB_STATUSES = tuple(state.value.lower() for state in JobState)
DEPARTMENT_STATUSES = tuple(status.value for status in DepartmentStatus)
STEP_STATUSES = tuple(status.value for status in StepStatus)


def timestamp(**kwargs: Any) -> fields.String:
    metadata = {"format": "date-time", **kwargs.pop("metadata", {})}
    return fields.String(metadata=metadata, **kwargs)


def one_of(values: Iterable[str], **kwargs: Any) -> fields.String:
    allowed: list[str | None] = list(values)
    if kwargs.get("allow_none"):
        allowed.append(None)  # JSON Schema's enum must list null for a nullable field
    metadata = {"enum": allowed, **kwargs.pop("metadata", {})}
    return fields.String(metadata=metadata, **kwargs)
