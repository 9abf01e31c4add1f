"""The VALIDATING step: the stored configuration is checked again by a worker.

The API validated the request already; this guards against records edited
since, and against a catalogue or region list that changed under a queued job.
The rules are the domain's (``app.domain.department``), the same the API uses.
"""

from __future__ import annotations

from typing import Any

from app.domain.department import ConfigRules, DepartmentConfig, InvalidConfig
from app.providers.base import CheckResult, DepartmentContext, ProviderError, Stopwatch


class ConfigValidationProvider:
    name = "validation"

    def __init__(self, rules: ConfigRules) -> None:
        self.rules = rules

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        try:
            DepartmentConfig.parse(context.config, self.rules)
        except InvalidConfig as exc:
            raise ProviderError(f"configuration no longer valid: {exc.errors}") from None
        return {"validated": True}

    def delete(self, context: DepartmentContext) -> None:
        """Validation creates nothing, so there is nothing to remove."""

    def check(self, context: DepartmentContext) -> CheckResult:
        watch = Stopwatch()
        try:
            self.create(context)
        except ProviderError as exc:
            return CheckResult("configuration", False, watch.elapsed_ms, str(exc))
        return CheckResult("configuration", True, watch.elapsed_ms)
