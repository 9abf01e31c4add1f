"""Which Docker engine to use, and whether one answers.

``DOCKER_HOST`` if set; otherwise the private engine `make up` and the tests
start (``scripts/docker_engine.sh``), else the system socket. Decides the
default ``CONTAINER_RUNTIME``: ``docker`` wherever an engine answers.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

PING_TIMEOUT_SECONDS = 1.0


def engine_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    default = Path(cache) / "provisioning-orchestrator" / "docker"
    return Path(os.environ.get("DOCKER_ENGINE_DIR") or default)


def default_docker_host() -> str:
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    own = engine_dir() / "docker.sock"
    for candidate in (own, Path("/var/run/docker.sock")):
        if candidate.exists():
            return f"unix://{candidate}"
    return f"unix://{own}"


def engine_answers(docker_host: str) -> bool:
    """A raw ``GET /_ping``: cheap enough to run at every process start."""
    parts = urlsplit(docker_host)
    try:
        if parts.scheme == "unix":
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.settimeout(PING_TIMEOUT_SECONDS)
            connection.connect(parts.path)
        elif parts.scheme in ("tcp", "http"):
            address = (parts.hostname or "127.0.0.1", parts.port or 2375)
            connection = socket.create_connection(address, timeout=PING_TIMEOUT_SECONDS)
        else:
            return False
        with connection:
            connection.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return connection.recv(64).split(b" ")[1:2] == [b"200"]
    except (OSError, IndexError):
        return False
