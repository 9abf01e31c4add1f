"""Gunicorn settings the command line cannot express: the settings check and the
Prometheus hook.

Used by scripts/stack.sh and tests/support/stack.py (`gunicorn -c config/gunicorn.conf.py`).
"""

from __future__ import annotations

import os
from typing import Any

# One request per connection. With keep-alive, a gthread worker keeps every
# connection it accepts, and a client opening its connections together (a
# poller fleet, a proxy's pool, wrk) could land them all on one worker: with 16
# at once that happened in 2 runs of 6, and the API answered 310 requests/s
# instead of 640, one core idle (issue 16). Each request on a new connection
# goes to whichever worker accepts first, which is the idle one: 590 to 620
# requests/s in every run. Capping connections per worker instead
# (worker_connections) balanced them too, but would starve every client past
# the cap while the first ones keep polling.
keepalive = 0


def on_starting(server: Any) -> None:
    """Bad settings stop the master before any worker boots, with the one message and
    exit code every entry point gives. Left to the workers, each fails to boot and
    gunicorn, halting, prints tracebacks of its own around the message."""
    from app import config

    with config.reported_at_start():
        config.load_settings()


def child_exit(server: Any, worker: Any) -> None:
    """A worker that died (or was recycled) must not keep its live gauges in
    the multiprocess files; its counters stay, as counters must."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
