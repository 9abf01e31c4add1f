"""Time spent inside provider calls, measured in the benchmark's own worker.

`benchmarks.worker` wraps every provider the saga calls in `TimedProvider`, which
records one row per call in Redis: department, provider, operation, wall-clock
start and end (epoch seconds, the same clock the job_steps timestamps use).
The push happens after the end is taken, so it counts as orchestration time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

CALLS_KEY = "po:bench:provider-calls"
T = TypeVar("T")


@dataclass(frozen=True)
class ProviderCall:
    department_id: str
    provider: str
    operation: str
    start: float
    end: float
    ok: bool

    @property
    def seconds(self) -> float:
        return self.end - self.start


class CallSink:
    def __init__(self, redis_url: str) -> None:
        self._redis = redis.Redis.from_url(redis_url)

    def record(self, call: ProviderCall) -> None:
        self._redis.rpush(CALLS_KEY, json.dumps(call.__dict__))

    def mark(self, key: str) -> None:
        self._redis.rpush(key, time.time())

    def wait_mark(self, key: str, timeout: float) -> bool:
        return self._redis.blpop([key], timeout=max(int(timeout), 1)) is not None

    def read_all(self) -> list[ProviderCall]:
        return [ProviderCall(**json.loads(raw)) for raw in self._redis.lrange(CALLS_KEY, 0, -1)]


class TimedProvider:
    """Forwards to the real provider and records how long each call took."""

    def __init__(self, inner: Any, sink: CallSink) -> None:
        self._inner = inner
        self._sink = sink
        self.name: str = inner.name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._inner, attribute)

    def _timed(self, operation: str, context: Any, call: Callable[[], T]) -> T:
        start, ok = time.time(), False
        try:
            result = call()
            ok = True
            return result
        finally:
            end = time.time()
            self._sink.record(
                ProviderCall(context.department_id, self.name, operation, start, end, ok)
            )

    def create(self, context: Any) -> dict[str, Any]:
        return self._timed("create", context, lambda: self._inner.create(context))

    def delete(self, context: Any) -> None:
        self._timed("delete", context, lambda: self._inner.delete(context))

    def check(self, context: Any) -> Any:
        return self._timed("check", context, lambda: self._inner.check(context))


def timed_lookup(lookup: Callable[[Any, str], Any], sink: CallSink) -> Callable[[Any, str], Any]:
    """Wraps `app.providers.registry.provider` so that each provider it returns is timed."""
    cache: dict[int, TimedProvider] = {}

    def timed(settings: Any, name: str) -> Any:
        inner = lookup(settings, name)
        wrapped = cache.get(id(inner))
        if wrapped is None:
            wrapped = cache[id(inner)] = TimedProvider(inner, sink)
        return wrapped

    return timed
