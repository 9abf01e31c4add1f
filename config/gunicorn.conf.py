"""Gunicorn settings the command line cannot express: the settings check and the
Prometheus hook.

Used by scripts/stack.sh and tests/support/stack.py (`gunicorn -c config/gunicorn.conf.py`).
"""

from __future__ import annotations

import os
from typing import Any


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
