"""Serve the agent: one process, a small pool of threads (waitress).

Run as ``python -m department_agent.serve --bind=HOST:PORT`` (the Docker runtime),
``--fd=N`` (a socket the local runtime bound and handed over, so the port it
reports is the port served), or with no option: then on the port the platform
names in ``PORT``, as Railway runs an image (its own command, ``PORT`` injected,
traffic routed to any interface), else on 127.0.0.1:8000.

One process rather than gunicorn's arbiter and worker: the arbiter only
supervised a single worker, yet was 12.4 of an agent's 26.3 MiB and a second
interpreter waking every second (issue 16, benchmarks/RESULTS.md). Supervision
is the runtime's: Docker restarts a container whose agent exited; a local agent
that died is found by the drift sweep (DEGRADED, repaired with AUTO_REPAIR).
The limits below are what gunicorn gave the agent, and tighter where the agent
needs less: it answers two GET routes, to anyone the gateway lets through.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from department_agent.app import AgentConfigError, create_app

# What waitress is told. Requests: a request line and headers of at most 8 KiB
# (gunicorn's limits were 4 KiB per line and 8 KiB per header), no body worth
# reading (a GET route has none). Connections: at most 32 at once, idle ones
# closed after 30 s, so a slow client holds no thread and few sockets.
SERVER_SETTINGS: dict[str, Any] = {
    "threads": 2,
    "connection_limit": 32,
    "channel_timeout": 30,
    "max_request_header_size": 8192,
    "max_request_body_size": 65536,
    "ident": "department-agent",
    "expose_tracebacks": False,
    "asyncore_use_poll": True,
    # The loop's idle wake-up: only to close idle connections; 1 s by default.
    "asyncore_loop_timeout": 5,
    "cleanup_interval": 10,
}
EXIT_CONFIG = 3  # as gunicorn's "application failed to load": the runtime reports the log
# The port was taken between the runtime choosing it and the agent binding it:
# the runtime starts the agent again on another (a config error would not heal).
EXIT_PORT_TAKEN = 4
USAGE = "usage: python -m department_agent.serve [--bind=HOST:PORT | --fd=N]"
DEFAULT_BIND = "127.0.0.1:8000"


@dataclass(frozen=True)
class Listen:
    bind: str | None = None
    fd: int | None = None


def parse_args(argv: list[str], environ: Mapping[str, str] = os.environ) -> Listen:
    """``--bind=HOST:PORT``, ``--fd=N`` or nothing (``default_bind``). Parsed by hand:
    argparse (and the gettext it loads) was 7 of the ~70 ms of CPU an agent spends
    starting."""
    if not argv:
        return Listen(bind=default_bind(environ))
    if len(argv) != 1 or not argv[0].startswith(("--bind=", "--fd=")):
        raise SystemExit(f"{USAGE}\ngot: {' '.join(argv) or 'nothing'}")
    option, _, value = argv[0].partition("=")
    if option == "--fd":
        if not value.isdigit():
            raise SystemExit(f"{USAGE}\n--fd wants a descriptor number, not {value!r}")
        return Listen(fd=int(value))
    return Listen(bind=value)


def default_bind(environ: Mapping[str, str]) -> str:
    """``PORT`` on every interface (``HOST`` narrows it), as a platform that injects
    PORT routes to it; without PORT, loopback only."""
    port = environ.get("PORT")
    return f"{environ.get('HOST') or '0.0.0.0'}:{port}" if port else DEFAULT_BIND  # noqa: S104


def listen_settings(args: Listen) -> dict[str, Any]:
    if args.fd is not None:
        # The family and type are read from the descriptor itself.
        return {"sockets": [socket.socket(fileno=args.fd)]}
    host, _, port = str(args.bind).rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"department_agent.serve: --bind wants HOST:PORT, not {args.bind!r}")
    return {"listen": f"{host}:{port}"}


def stop_on_sigterm() -> None:
    """SIGTERM ends the loop like Ctrl-C: waitress then closes its sockets and
    waits for the requests in hand. It also matters as PID 1 in a container,
    where a signal without a handler is ignored."""

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        app = create_app()
    except AgentConfigError as exc:
        print(f"department_agent: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    from waitress.server import create_server  # after the settings check: a bad one exits fast

    try:
        server = create_server(app, **SERVER_SETTINGS, **listen_settings(args))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"department_agent: port taken ({args.bind}): {exc}", file=sys.stderr, flush=True)
        return EXIT_PORT_TAKEN
    stop_on_sigterm()
    where = args.bind or f"inherited socket {args.fd}"
    print(f"department_agent: serving on {where}", file=sys.stderr, flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
