"""What a department token is shown of a job: step errors and log lines come
from components and drivers, which may echo an address with its password, a
key, or an internal detail. Admins see them as recorded; a department's own
token sees them through the log redactor (secret shapes and the configured
secrets themselves)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from app import config
from app.api.auth import scoped_department
from app.config import Settings
from app.observability.logs import secret_literals
from app.observability.redaction import Redactor


@lru_cache(maxsize=2)
def _redactor(settings: Settings) -> Redactor:
    return Redactor(secret_literals(settings))


def tenant_redactor() -> Redactor:
    return _redactor(config.current())


def for_caller(view: dict[str, Any]) -> dict[str, Any]:
    """The view as the current caller may see it."""
    if scoped_department() is None:
        return view
    return dict(tenant_redactor().strings(view))
