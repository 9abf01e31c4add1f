"""The agent's server (department_agent/serve.py): where it listens, what it
refuses, and how it stops. A real waitress server on a loopback port, no stack."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from waitress.server import create_server

from department_agent import serve
from department_agent.app import create_app

ENVIRONMENT = {
    "AGENT_DEPARTMENT_ID": "serve-test",
    "AGENT_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    "AGENT_OAUTH_TOKEN_URL": "http://127.0.0.1:1/token",
    "AGENT_OAUTH_CLIENT_ID": "client",
    "AGENT_OAUTH_CLIENT_SECRET": "secret",
}


@pytest.fixture
def served() -> Iterator[str]:
    """The agent behind the server settings it runs with, on a socket handed over
    as the local runtime hands it (by descriptor)."""
    listener = socket.create_server(("127.0.0.1", 0))
    settings = serve.listen_settings(serve.parse_args([f"--fd={listener.fileno()}"]))
    server: Any = create_server(create_app(ENVIRONMENT), **serve.SERVER_SETTINGS, **settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    server.close()


def test_it_answers_on_the_socket_it_was_handed(served: str) -> None:
    response = requests.get(served + "/", timeout=5)

    assert response.status_code == 200
    assert response.json()["departmentId"] == "serve-test"
    assert response.headers["Server"] == "department-agent"


def test_oversized_headers_are_refused_before_the_app_sees_them(served: str) -> None:
    response = requests.get(served + "/", headers={"X-Filler": "a" * 9000}, timeout=5)

    assert response.status_code == 431


def test_a_body_beyond_the_limit_is_refused(served: str) -> None:
    response = requests.get(served + "/", data=b"x" * 70_000, timeout=5)

    assert response.status_code == 413


@pytest.mark.parametrize(
    "argv", [["--bind=127.0.0.1:1", "--fd=3"], ["--bind", "127.0.0.1:1"], ["--fd=three"]]
)
def test_exactly_one_way_to_listen_is_required(argv: list[str]) -> None:
    with pytest.raises(SystemExit, match=r"usage: python -m department_agent\.serve"):
        serve.parse_args(argv)


@pytest.mark.parametrize("bind", ["8000", ":8000", "host:port"])
def test_a_bind_without_host_and_port_is_refused(bind: str) -> None:
    with pytest.raises(SystemExit, match="HOST:PORT"):
        serve.listen_settings(serve.parse_args([f"--bind={bind}"]))


def test_a_bind_names_host_and_port() -> None:
    args = serve.parse_args(["--bind=127.0.0.1:8000"])

    assert serve.listen_settings(args) == {"listen": "127.0.0.1:8000"}


def test_missing_settings_exit_at_once_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AGENT_SETTINGS_FILE", raising=False)

    assert serve.main(["--bind=127.0.0.1:0"]) == serve.EXIT_CONFIG
    assert "missing environment variables" in capsys.readouterr().err


def test_sigterm_stops_it_cleanly() -> None:
    """As PID 1 in a container a signal without a handler would be ignored, and
    `docker stop` would wait its whole timeout, then kill."""
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    agent = subprocess.Popen(
        [sys.executable, "-m", "department_agent.serve", f"--fd={listener.fileno()}"],
        env={**os.environ, **ENVIRONMENT},
        pass_fds=(listener.fileno(),),
        stderr=subprocess.PIPE,
        text=True,
    )
    listener.close()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(url, timeout=2).ok:
                    break
            time.sleep(0.05)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=10) == 0
    finally:
        agent.kill()
    assert "serving on inherited socket" in (agent.stderr.read() if agent.stderr else "")


@pytest.mark.parametrize(
    ("environ", "bind"),
    [
        ({}, "127.0.0.1:8000"),  # nothing said: loopback only
        ({"PORT": "9123"}, "0.0.0.0:9123"),  # a platform's PORT (Railway), any interface
        ({"PORT": "9123", "HOST": "127.0.0.1"}, "127.0.0.1:9123"),
    ],
)
def test_without_an_option_it_listens_where_the_platform_says(
    environ: dict[str, str], bind: str
) -> None:
    args = serve.parse_args([], environ)

    assert args == serve.Listen(bind=bind)
    assert serve.listen_settings(args) == {"listen": bind}


def test_a_port_already_taken_exits_with_its_own_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """So the runtime can tell it from bad settings and retry on another port."""
    from app.providers.docker_agent import EXIT_PORT_TAKEN

    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert serve.main([f"--bind=127.0.0.1:{port}"]) == serve.EXIT_PORT_TAKEN
    assert serve.EXIT_PORT_TAKEN == EXIT_PORT_TAKEN != serve.EXIT_CONFIG
