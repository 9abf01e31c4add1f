"""Test-only fault injection, switched on by FAULT_INJECTION_ENABLED.

Production refuses that setting (see config.validate), so no request can reach
this code there. Tests arm a fault for one department and one operation in
Redis, where every worker process sees it:

    HSET po:faults:<departmentId> <provider>.<create|delete|check> '{"mode": "fail"}'

Modes: ``fail`` (permanent error before acting), ``fail_after`` (act, then fail:
proves the failed step's own leftovers are compensated), ``transient`` (a
retryable error), ``delay`` (sleep ``seconds`` then act). ``times`` limits how
often the fault fires (default: always); ``message`` replaces a ``fail``'s text.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import redis

from app.providers.base import (
    CheckResult,
    DepartmentContext,
    Provider,
    ProviderError,
    TransientProviderError,
)

KEY_PREFIX = "po:faults:"


class FaultInjector:
    def __init__(self, redis_url: str) -> None:
        self._redis = redis.Redis.from_url(redis_url, decode_responses=True)

    def arm(self, department_id: str, operation: str, **spec: Any) -> None:
        self._redis.hset(KEY_PREFIX + department_id, operation, json.dumps(spec))

    def clear(self, department_id: str) -> None:
        self._redis.delete(KEY_PREFIX + department_id, KEY_PREFIX + department_id + ":fired")

    def take(self, department_id: str, operation: str) -> dict[str, Any] | None:
        """The armed fault for this operation, if it still has shots left."""
        raw = cast(str | None, self._redis.hget(KEY_PREFIX + department_id, operation))
        if raw is None:
            return None
        spec: dict[str, Any] = json.loads(raw)
        key = KEY_PREFIX + department_id + ":fired"
        fired = cast(int, self._redis.hincrby(key, operation, 1))
        times = spec.get("times")
        return spec if times is None or fired <= int(times) else None


class FaultyProvider:
    """Wraps a real provider; with no fault armed it is the provider itself."""

    def __init__(self, inner: Provider, injector: FaultInjector) -> None:
        self._inner = inner
        self._injector = injector
        self.name = inner.name

    @property
    def inner(self) -> Provider:
        return self._inner

    def _before(self, context: DepartmentContext, op: str) -> dict[str, Any] | None:
        spec = self._injector.take(context.department_id, f"{self.name}.{op}")
        if spec is None:
            return None
        mode = spec.get("mode", "fail")
        if mode == "delay":
            time.sleep(float(spec.get("seconds", 1)))
        elif mode == "transient":
            raise TransientProviderError(f"injected transient fault in {self.name}.{op}")
        elif mode == "fail":
            # ``message``: what a real component's error might echo back.
            raise ProviderError(spec.get("message") or f"injected fault in {self.name}.{op}")
        return spec

    @staticmethod
    def _after(spec: dict[str, Any] | None, name: str) -> None:
        if spec is not None and spec.get("mode") == "fail_after":
            raise ProviderError(f"injected fault after {name} acted")

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        spec = self._before(context, "create")
        outputs = self._inner.create(context)
        self._after(spec, f"{self.name}.create")
        return outputs

    def delete(self, context: DepartmentContext) -> None:
        spec = self._before(context, "delete")
        self._inner.delete(context)
        self._after(spec, f"{self.name}.delete")

    def check(self, context: DepartmentContext) -> CheckResult:
        self._before(context, "check")
        return self._inner.check(context)
