"""Who hears of a job's state changes: the operators' WEBHOOK_URLS, then the
callbackUrl the job's configuration gives (or, without one, its department's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def callback_url(
    job_config: dict[str, Any] | None, department_config: dict[str, Any] | None
) -> str | None:
    callback = (job_config or {}).get("callbackUrl") or (department_config or {}).get("callbackUrl")
    return callback if isinstance(callback, str) else None


def target_urls(callback: str | None, configured: Sequence[str]) -> list[str]:
    """WEBHOOK_URLS, then the callback, each once."""
    return list(dict.fromkeys([*configured, *([callback] if callback else [])]))
