"""Flower's entry point: `celery -A flower_app flower` (scripts/stack.sh, Compose).

Flower asks for FLOWER_BASIC_AUTH (`user:password`, generated into .env by
`make env`) on its pages and API, but not on its Prometheus page, which names
every task and worker: that is guarded here too. Without credentials Flower
would serve everything to anyone (and its API can start any task, or shut the
workers down), so it refuses to start. Only /healthcheck ("OK") stays open.
"""

from __future__ import annotations

import os
import sys

from flower.views.monitor import Metrics
from tornado import web

if ":" not in os.environ.get("FLOWER_BASIC_AUTH", ""):
    sys.exit("FLOWER_BASIC_AUTH (user:password) is not set: run `make env`, or set it")

Metrics.get = web.authenticated(Metrics.get)  # type: ignore[method-assign]

from celery_worker import celery_app  # noqa: E402 - only once Flower is locked

__all__ = ["celery_app"]
