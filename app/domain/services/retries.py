"""How a failed attempt is retried and described."""

from __future__ import annotations

import random

from app.config import Settings
from app.domain.saga import SagaStep


def max_retries(step: SagaStep, settings: Settings) -> int:
    if step.name == "validate_deployment":
        return settings.VALIDATION_RETRY_MAX
    return settings.RETRY_MAX


def backoff(attempt: int, settings: Settings) -> float:
    """Exponential backoff with jitter: base * factor^(attempt-1) * (1 +- jitter)."""
    delay = settings.RETRY_BASE * settings.RETRY_FACTOR ** max(attempt - 1, 0)
    jitter = random.uniform(-settings.RETRY_JITTER, settings.RETRY_JITTER)
    return round(max(delay * (1 + jitter), 0.05), 3)


def describe_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:2000]
