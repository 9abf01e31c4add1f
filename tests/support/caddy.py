"""Real components for gateway tests: our Caddy via scripts/caddy.sh, and tiny upstreams."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from app.providers.base import DepartmentContext
from tests.support.caddy_admin import caddy_admin

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CADDY_SCRIPT = PROJECT_ROOT / "scripts" / "caddy.sh"


@dataclass
class CaddyInstance:
    """Our own caddy, started with the project's base config on a test port; its
    admin API on the unix socket scripts/caddy.sh opens by default."""

    gateway_port: int
    run_dir: Path

    @property
    def admin_url(self) -> str:
        return f"unix://{self.run_dir}/caddy-home/admin.sock"

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return caddy_admin(self.admin_url, method, path, **kwargs)

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def script(self, command: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "CADDY_ADMIN_URL": self.admin_url,
            "GATEWAY_PORT": str(self.gateway_port),
            "RUN_DIR": str(self.run_dir),
        }
        return subprocess.run(
            [str(CADDY_SCRIPT), command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start(self) -> None:
        result = self.script("start")
        if result.returncode != 0:
            raise RuntimeError(f"caddy.sh start failed:\n{result.stdout}\n{result.stderr}")

    def stop(self) -> None:
        self.script("stop")

    def reset(self) -> None:
        """Reload the rendered base config, dropping every department route."""
        config = json.loads((self.run_dir / "caddy.json").read_text())
        response = self.admin("POST", "/load", json=config)
        response.raise_for_status()

    def config(self) -> Any:
        response = self.admin("GET", "/config/")
        response.raise_for_status()
        return response.json()

    def count_id(self, object_id: str) -> int:
        """How many objects in the whole live config carry this @id."""
        return sum(1 for node in _walk(self.config()) if node.get("@id") == object_id)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@dataclass
class Upstream:
    """A department's service stand-in: answers JSON naming itself and the path it saw."""

    dept: str
    paths: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> Upstream:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream.paths.append(self.path)
                body = json.dumps({"dept": upstream.dept, "path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output readable

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval keeps shutdown() (run after every test) quick.
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class MemorySecrets:
    """SecretStore stand-in; the gateway never touches secrets."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def put(self, name: str, value: str) -> None:
        self._values[name] = value

    def delete(self, name: str) -> None:
        self._values.pop(name, None)


def department(department_id: str, upstream: str | None = None) -> DepartmentContext:
    resources = {} if upstream is None else {"deploy_container": {"upstream": upstream}}
    return DepartmentContext(
        department_id=department_id, config={}, resources=resources, secrets=MemorySecrets()
    )
