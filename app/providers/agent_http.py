"""Probes of a running agent over HTTP, the same for every runtime."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import requests

PROBE_TIMEOUT = (1.0, 2.0)
HEALTH_TIMEOUT = (3.05, 15.0)
# Seconds between looks at a booting agent's container in the engine (a crash
# shows there); the HTTP probe runs more often.
ENGINE_LOOK_INTERVAL = 1.0


def boot_poll_delays(
    first: float = 0.1, growth: float = 1.25, most: float = 0.5
) -> Iterator[float]:
    """Pauses between probes of a booting agent: short at first (an idle machine
    boots one in about 0.6 s), then longer. In a burst a boot takes seconds, and
    a probe every 0.2 s cost the worker a tenth of its CPU (issue 16's profile)."""
    delay = first
    while True:
        yield delay
        delay = min(delay * growth, most)


def answers(base_url: str, department_id: str) -> bool:
    """True when an agent of this department serves ``/`` at ``base_url``."""
    try:
        response = requests.get(f"{base_url}/", timeout=PROBE_TIMEOUT)
        return response.status_code == 200 and (
            response.json().get("departmentId") == department_id
        )
    except (requests.RequestException, ValueError, AttributeError):
        return False


def probe_health(base_url: str) -> tuple[bool, str, dict[str, Any]]:
    """The agent's own ``/health``: (healthy, why not, body)."""
    try:
        response = requests.get(f"{base_url}/health", timeout=HEALTH_TIMEOUT)
    except requests.RequestException as exc:
        return False, f"GET /health failed: {exc.__class__.__name__}: {exc}", {}
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 200:
        return True, "", body
    failing = (body.get("checks") or {}) if isinstance(body, dict) else {}
    reasons = [f"{name}: {c.get('detail')}" for name, c in failing.items() if not c.get("ok")]
    detail = f"/health answered {response.status_code}: " + ("; ".join(reasons) or "?")
    return False, detail, body if isinstance(body, dict) else {}
