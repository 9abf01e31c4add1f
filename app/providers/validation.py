"""The VALIDATING step: the stored configuration is checked again by a worker.

The API validated the request already; this guards against records edited
since, and against a catalogue or region list that changed under a queued job.
"""

from __future__ import annotations

from typing import Any

from app.providers.base import CheckResult, DepartmentContext, ProviderError, Stopwatch


class ConfigValidationProvider:
    name = "validation"

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        from app.api.provisioning_schemas import DepartmentConfigSchema

        errors = DepartmentConfigSchema().validate(context.config)
        if errors:
            raise ProviderError(f"configuration no longer valid: {errors}")
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
