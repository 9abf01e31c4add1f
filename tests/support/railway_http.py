"""The stand-in's HTTP side: one threaded server posting each request to ``handle``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


class Handles(Protocol):
    def handle(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]: ...


class Server:
    def __init__(self, standin: Handles, address: tuple[str, int], path: str) -> None:
        self._httpd = ThreadingHTTPServer(address, _Handler)
        self._httpd.standin = standin  # type: ignore[attr-defined]
        self._httpd.graphql_path = path  # type: ignore[attr-defined]
        self._path = path
        # A short poll interval keeps stop() (and so every test teardown) quick.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{self._path}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def serve(standin: Handles, address: tuple[str, int], path: str) -> Server:
    return Server(standin, address, path)


class _Handler(BaseHTTPRequestHandler):
    server_version = "railway-standin/2"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != self.server.graphql_path:  # type: ignore[attr-defined]
            self._send(404, {"errors": [{"message": "Not Found"}]})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload, extra = self.server.standin.handle(headers, body)  # type: ignore[attr-defined]
        self._send(status, payload, extra)

    def do_GET(self) -> None:
        self._send(405, {"errors": [{"message": "Use POST"}]})

    def _send(
        self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: request lines are noise in test output."""
