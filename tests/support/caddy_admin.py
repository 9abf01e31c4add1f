"""Tests reach Caddy's admin API the way the orchestrator does (socket or http)."""

from __future__ import annotations

from functools import cache
from typing import Any

import requests

from app.providers.unix_http import session_for


@cache
def _session(admin_url: str) -> tuple[requests.Session, str]:
    return session_for(admin_url)


def caddy_admin(admin_url: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    """One admin API call; ``path`` starts with a slash, e.g. ``/config/``."""
    session, base = _session(admin_url)
    kwargs.setdefault("timeout", 10)
    return session.request(method, f"{base}{path}", **kwargs)
