"""HTTP over a unix socket for ``requests``, for admin APIs kept off the network.

Caddy's admin API can rewrite every route and read the whole gateway config, so
by default it listens on a socket in a 0700 directory (scripts/caddy.sh): only
the orchestrator's OS user can connect, while department agents (their own
users, or uid 10001 in containers on the host network) cannot, whatever
loopback port they try. ``unix:///path/admin.sock`` in a setting selects it.
"""

from __future__ import annotations

import socket
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

UNIX_SCHEME = "unix://"
# requests needs an http-like URL; this prefix is mounted on the session only.
UNIX_BASE_URL = "http+unix://localhost"


class _UnixConnection(urllib3.connection.HTTPConnection):
    def __init__(self, socket_path: str, **kwargs: Any) -> None:
        # "localhost" is the Host header Caddy's admin is told to accept.
        super().__init__("localhost", **kwargs)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        timeout = self.timeout if isinstance(self.timeout, (int, float)) else None
        sock.settimeout(timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _UnixConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, socket_path: str, **kwargs: Any) -> None:
        super().__init__("localhost", **kwargs)
        self.socket_path = socket_path

    def _new_conn(self) -> _UnixConnection:
        return _UnixConnection(self.socket_path, timeout=self.timeout.connect_timeout)


class UnixSocketAdapter(HTTPAdapter):
    """Sends every request mounted on it to one unix socket."""

    def __init__(self, socket_path: str) -> None:
        # Caddy closes its admin connections when a config load replaces the admin
        # endpoint; a kept-alive socket reused just then is reset by the peer (seen
        # once in a fresh-clone run). One retry, for idempotent methods only (GET,
        # PUT, DELETE...: urllib3's default list), sends it again on a new socket.
        super().__init__(max_retries=urllib3.Retry(total=1, redirect=0, status=0))
        self._pool = _UnixConnectionPool(socket_path, maxsize=4)

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: Any, proxies: Any = None, cert: Any = None
    ) -> _UnixConnectionPool:
        return self._pool

    def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
        return request.path_url

    def close(self) -> None:
        self._pool.close()
        super().close()


def socket_path(url: str) -> str | None:
    """The socket of a ``unix:///path`` URL; None for any other URL."""
    if not url.startswith(UNIX_SCHEME):
        return None
    path = url[len(UNIX_SCHEME) :]
    if not path.startswith("/"):
        raise ValueError(f"{url!r}: a unix socket URL needs an absolute path (unix:///...)")
    return path


def session_for(url: str) -> tuple[requests.Session, str]:
    """A session and the base URL to prefix paths with, for http(s) or unix URLs."""
    session = requests.Session()
    path = socket_path(url)
    if path is None:
        return session, url.rstrip("/")
    session.mount(UNIX_BASE_URL, UnixSocketAdapter(path))
    return session, UNIX_BASE_URL
