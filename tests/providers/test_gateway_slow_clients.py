"""An anonymous caller against one department's agent, through the gateway.

The agent (waitress) serves at most 32 connections at once and reads a request's
body before its app sees it. If the gateway opened an upstream connection for a
request whose body arrives a byte at a time, a few dozen such requests from
anyone on the internet would hold every one of the agent's connections, and the
department would stop answering. Real Caddy (scripts/caddy.sh, the project's
base config), the real agent server with its own settings, raw sockets.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from waitress.server import create_server

from app.providers.gateway_caddy import CaddyGatewayProvider
from department_agent import serve
from department_agent.app import create_app
from tests.support.caddy import CaddyInstance, department

ENVIRONMENT = {
    "AGENT_DEPARTMENT_ID": "sales",
    "AGENT_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    "AGENT_OAUTH_TOKEN_URL": "http://127.0.0.1:1/token",
    "AGENT_OAUTH_CLIENT_ID": "client",
    "AGENT_OAUTH_CLIENT_SECRET": "secret",
}
# More than the agent's connection limit (serve.SERVER_SETTINGS).
SLOW_CLIENTS = 48

pytestmark = pytest.mark.slow


@pytest.fixture
def agent_route(caddy: CaddyInstance) -> Iterator[str]:
    """The agent under its own server settings, routed at /departments/sales/."""
    caddy.reset()
    listener = socket.create_server(("127.0.0.1", 0))
    settings = serve.listen_settings(serve.parse_args([f"--fd={listener.fileno()}"]))
    server: Any = create_server(create_app(ENVIRONMENT), **serve.SERVER_SETTINGS, **settings)
    threading.Thread(target=server.run, daemon=True).start()
    gateway = CaddyGatewayProvider(admin_url=caddy.admin_url, public_url=caddy.public_url)
    gateway.create(department("sales", f"127.0.0.1:{listener.getsockname()[1]}"))
    yield f"{caddy.public_url}/departments/sales/"
    server.close()


def _slow_request(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(head)
    return sock


def _trickle(sockets: list[socket.socket], stop: threading.Event) -> None:
    """One byte per connection per second: never idle, never done."""
    while not stop.wait(1.0):
        for sock in sockets:
            try:
                sock.sendall(b"a")
            except OSError:
                continue  # the gateway cut it off: that is the point


@pytest.mark.parametrize(
    "head",
    [
        b"POST /departments/sales/ HTTP/1.1\r\nHost: gw\r\nContent-Length: 60000\r\n\r\n",
        b"POST /departments/sales/ HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ffff\r\n",
    ],
    ids=["content-length", "chunked"],
)
def test_slow_bodies_do_not_take_the_department_offline(
    caddy: CaddyInstance, agent_route: str, head: bytes
) -> None:
    assert requests.get(agent_route, timeout=5).status_code == 200
    sockets = [_slow_request(caddy.gateway_port, head) for _ in range(SLOW_CLIENTS)]
    stop = threading.Event()
    trickler = threading.Thread(target=_trickle, args=(sockets, stop), daemon=True)
    trickler.start()
    try:
        time.sleep(2)  # every slow request has reached whatever it is going to reach
        started = time.monotonic()
        response = requests.get(agent_route, timeout=10)
        waited = time.monotonic() - started
    finally:
        stop.set()
        trickler.join()
        for sock in sockets:
            sock.close()
    assert response.status_code == 200
    assert response.json()["departmentId"] == "sales"
    assert waited < 3, f"the department answered only after {waited:.1f}s"


def test_a_body_within_the_limit_still_reaches_the_agent(agent_route: str) -> None:
    response = requests.post(agent_route, data=b"x" * 60_000, timeout=10)

    assert response.status_code == 405  # the agent's own answer: its routes are GETs
    assert "department-agent" in response.headers["Server"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_refused(agent_route: str, chunked: bool) -> None:
    body = b"x" * 70_000
    data: Any = iter([body[:40_000], body[40_000:]]) if chunked else body
    response = requests.post(agent_route, data=data, timeout=10)

    assert response.status_code == 413


def test_a_client_that_never_finishes_its_headers_is_cut_off(caddy: CaddyInstance) -> None:
    """The gateway's own sockets are bounded too (read_header_timeout, 10 s)."""
    sock = _slow_request(caddy.gateway_port, b"GET /departments/sales/ HTTP/1.1\r\nHost: gw\r\n")
    sock.settimeout(20)
    started = time.monotonic()
    try:
        leftover = sock.recv(4096)  # b"" once the gateway closes the connection
    finally:
        sock.close()
    assert time.monotonic() - started < 15
    assert not leftover.startswith(b"HTTP/1.1 200")
