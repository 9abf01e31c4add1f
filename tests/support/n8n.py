"""A real n8n for workflow tests: scripts/n8n.sh plus small public-API helpers."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from app.providers.base import DepartmentContext

PROJECT_ROOT = Path(__file__).resolve().parents[2]
N8N_SCRIPT = PROJECT_ROOT / "scripts" / "n8n.sh"
# A from-scratch install downloads ~1.8 GB of npm packages.
SCRIPT_TIMEOUT_S = 900


class DictSecrets:
    """In-memory SecretStore; the workflows provider stores no secrets."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def put(self, name: str, value: str) -> None:
        self._values[name] = value

    def delete(self, name: str) -> None:
        self._values.pop(name, None)


def department(department_id: str, **config: Any) -> DepartmentContext:
    return DepartmentContext(department_id, config, {}, DictSecrets())


@dataclass
class N8nInstance:
    base_url: str
    api_key: str

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"X-N8N-API-KEY": self.api_key}
        return requests.request(
            method, f"{self.base_url}/api/v1{path}", headers=headers, timeout=15, **kwargs
        )

    def workflows_named(self, prefix: str) -> list[dict[str, Any]]:
        """Every workflow whose name starts with prefix (the API filter is a LIKE)."""
        response = self.api("GET", "/workflows", params={"name": prefix, "limit": 250})
        response.raise_for_status()
        return [w for w in response.json()["data"] if w["name"].startswith(prefix)]

    def tag_names(self) -> set[str]:
        response = self.api("GET", "/tags", params={"limit": 250})
        response.raise_for_status()
        return {t["name"] for t in response.json()["data"]}

    def trigger(self, path: str, payload: dict[str, Any] | None = None) -> requests.Response:
        return requests.post(f"{self.base_url}/webhook/{path}", json=payload or {}, timeout=15)


def ensure_n8n(port: int = 5678) -> N8nInstance:
    """Install (or reuse), start (or reuse) and set up n8n; return its URL and key.

    Uses the default RUN_DIR so the instance is the same one developers and the
    lead use, and leaves it running afterwards.
    """
    # The shared checkout-wide run dir, whatever the session exported: one key
    # per checkout, shared with `make up`, instead of one per test session.
    env = {**os.environ, "N8N_PORT": str(port), "RUN_DIR": str(PROJECT_ROOT / ".run")}
    result = subprocess.run(
        [str(N8N_SCRIPT), "install", "start", "setup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"n8n.sh failed:\n{result.stdout}\n{result.stderr[-4000:]}")
    api_key = (PROJECT_ROOT / ".run" / "n8n-api-key").read_text().strip()
    return N8nInstance(base_url=f"http://127.0.0.1:{port}", api_key=api_key)
