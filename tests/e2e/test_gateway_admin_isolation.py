"""Caddy's admin API is the orchestrator's alone (issue 9, item 4), tried as an agent.

The admin API rewrites every department's route and reads the whole gateway
config. A department agent (uid 10001 in a container on the host network, or
its own OS user locally) must not reach it by any address: not the socket, not
a loopback port. The probe below runs with exactly that identity.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from app.providers.docker_agent import AGENT_UID
from tests.conftest import GATEWAY_PORT, Stack
from tests.support.as_user import python_as
from tests.support.caddy_admin import caddy_admin

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching to an agent's uid needs root")

PROBE = r"""
import json, socket, sys

def ask(sock, host):
    sock.settimeout(5)
    sock.sendall(f"GET /config/ HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data.decode(errors="replace")

results = {}
try:
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.connect(sys.argv[1])
    results["socket"] = ask(unix, "localhost")
except OSError as exc:
    results["socket"] = "refused: " + type(exc).__name__
for port in sys.argv[2:]:
    try:
        tcp = socket.create_connection(("127.0.0.1", int(port)), 5)
        results[port] = ask(tcp, "127.0.0.1:" + port)
    except OSError as exc:
        results[port] = "refused: " + type(exc).__name__
print(json.dumps(results))
"""


def caddy_tcp_ports(run_dir: Path) -> set[int]:
    """Every TCP port the suite's Caddy listens on, read from the kernel (ss)."""
    pid = (run_dir / "caddy" / "caddy.pid").read_text().strip()
    listing = subprocess.run(
        ["ss", "-H", "-ltnp"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    return {
        int(match.group(1))
        for line in listing.splitlines()
        if f"pid={pid}," in line and (match := re.search(r":(\d+)\s", line))
    }


def probe_as_agent(socket_path: str, ports: set[int]) -> dict[str, str]:
    ports_args = map(str, sorted(ports))
    return json.loads(python_as(AGENT_UID, AGENT_UID, PROBE, socket_path, *ports_args))


def test_agent_uid_reaches_no_caddy_admin_api(live_stack: Stack, run_dir: Path) -> None:
    admin_url = live_stack.env["CADDY_ADMIN_URL"]
    socket_path = admin_url.removeprefix("unix://")
    # The orchestrator itself gets through (it is what routes every department).
    assert caddy_admin(admin_url, "GET", "/config/").json()["apps"]["http"]

    ports = caddy_tcp_ports(run_dir)
    assert ports == {GATEWAY_PORT}, f"Caddy listens on more than the gateway: {ports}"

    answers = probe_as_agent(socket_path, ports)
    assert answers["socket"] == "refused: PermissionError", answers["socket"][:300]
    for port in ports:
        # The gateway answers (404 for no department), never with the config.
        assert '"apps"' not in answers[str(port)], f"port {port} served Caddy's config"
