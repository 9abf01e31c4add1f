"""The VALIDATING_DEPLOYMENT step and the health endpoint: one set of checks.

``create`` raises a transient error while any check fails, so the saga's retry
policy gives the deployment a bounded time to settle before rolling back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import requests

from app.domain.department import AGENT_CHECK
from app.persistence.secrets import UndecryptableSecret
from app.providers.base import (
    CheckResult,
    DepartmentContext,
    Provider,
    ProviderError,
    Stopwatch,
    TransientProviderError,
)


def agent_through_gateway(context: DepartmentContext) -> CheckResult:
    """The agent's own /health, reached the way users reach it: via the gateway."""
    watch = Stopwatch()
    url = context.resources.get("configure_gateway", {}).get("url")
    if not url:
        return CheckResult(AGENT_CHECK, False, watch.elapsed_ms, "no gateway route recorded")
    try:
        response = requests.get(url.rstrip("/") + "/health", timeout=(3, 10))
    except requests.RequestException as exc:
        return CheckResult(AGENT_CHECK, False, watch.elapsed_ms, f"{type(exc).__name__}")
    healthy = response.status_code == 200
    detail = "" if healthy else f"HTTP {response.status_code}: {response.text[:200]}"
    return CheckResult(AGENT_CHECK, healthy, watch.elapsed_ms, detail)


class DeploymentCheckProvider:
    name = "deployment_check"

    def __init__(
        self,
        components: Sequence[Provider],
        extra_checks: Sequence[Callable[[DepartmentContext], CheckResult]] = (
            agent_through_gateway,
        ),
    ) -> None:
        self._components = components
        self._extra_checks = extra_checks

    def run_checks(self, context: DepartmentContext) -> list[CheckResult]:
        results = [_safe_check(component.check, context) for component in self._components]
        results += [_safe_check(check, context) for check in self._extra_checks]
        return results

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        results = self.run_checks(context)
        failing = [f"{r.name}: {r.detail or 'unhealthy'}" for r in results if not r.healthy]
        hopeless = [f"{r.name}: {r.detail}" for r in results if r.data.get("hopeless")]
        if hopeless:
            # Waiting cannot make a wrong key right: fail now, with the reason.
            raise ProviderError("; ".join(hopeless))
        if failing:
            raise TransientProviderError("deployment not healthy yet: " + "; ".join(failing))
        return {"checks": {r.name: r.latency_ms for r in results}}

    def delete(self, context: DepartmentContext) -> None:
        """Checking creates nothing, so there is nothing to remove."""

    def check(self, context: DepartmentContext) -> CheckResult:
        watch = Stopwatch()
        failing = [r.name for r in self.run_checks(context) if not r.healthy]
        return CheckResult("deployment", not failing, watch.elapsed_ms, ", ".join(failing))


def _safe_check(
    check: Callable[[DepartmentContext], CheckResult], context: DepartmentContext
) -> CheckResult:
    """A crashing check is an unhealthy result, never a crashed health endpoint."""
    watch = Stopwatch()
    try:
        return check(context)
    except UndecryptableSecret as exc:
        name = getattr(getattr(check, "__self__", None), "name", "check")
        return CheckResult(str(name), False, watch.elapsed_ms, str(exc), {"hopeless": True})
    except Exception as exc:
        name = getattr(
            getattr(check, "__self__", None), "name", getattr(check, "__name__", "check")
        )
        return CheckResult(str(name), False, watch.elapsed_ms, f"{type(exc).__name__}: {exc}")
