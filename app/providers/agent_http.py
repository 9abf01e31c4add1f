"""Probes of a running agent over HTTP, the same for every runtime."""

from __future__ import annotations

from typing import Any

import requests

PROBE_TIMEOUT = (1.0, 2.0)
HEALTH_TIMEOUT = (3.05, 15.0)


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
