"""The one small interface every external component is driven through.

Each provider is idempotent in all three operations: ``create`` on an existing
resource returns its outputs again, ``delete`` on a missing one succeeds, and
both may be called with nothing but the department id (``cleanup`` relies on
that), using ``context.resources`` only as a hint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.domain.department import is_department_id


class ProviderError(Exception):
    """A failure that retrying will not fix (bad input, conflict, 4xx)."""


class TransientProviderError(ProviderError):
    """A failure that may go away on retry (timeout, refused, 429, 5xx)."""


def checked_department_id(department_id: object) -> str:
    """Every provider pastes the id into SQL identifiers, URLs, client ids or
    gateway config: anything but a valid id is refused before it gets there."""
    if not is_department_id(department_id):
        raise ProviderError(f"refusing invalid departmentId {department_id!r}")
    assert isinstance(department_id, str)
    return department_id


class SecretStore(Protocol):
    """Encrypted per-department secrets; values never leave the orchestrator's DB."""

    def get(self, name: str) -> str | None: ...

    def put(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> None: ...


@dataclass
class DepartmentContext:
    """Everything a provider may know about the department it acts on."""

    department_id: str
    config: dict[str, Any]
    resources: dict[str, dict[str, Any]]
    secrets: SecretStore

    @property
    def slug(self) -> str:
        """departmentId with hyphens turned into underscores, for SQL identifiers."""
        return self.department_id.replace("-", "_")


@dataclass
class CheckResult:
    name: str
    healthy: bool
    latency_ms: float
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    """``create`` returns non-secret outputs that are recorded on the step."""

    name: str

    def create(self, context: DepartmentContext) -> dict[str, Any]: ...

    def delete(self, context: DepartmentContext) -> None: ...

    def check(self, context: DepartmentContext) -> CheckResult: ...


class Stopwatch:
    """Measures a check's latency in milliseconds."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    @property
    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self._start) * 1000, 2)
