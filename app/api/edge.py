"""The API's edge: what a request costs before anyone knows who sent it.

- A body larger than ``MAX_CONTENT_LENGTH`` is refused with 413 from its
  declared length, before a byte of it is read; a chunked body, which
  declares none, is read here at most one byte past the limit.
- A request that fails authentication is neither parsed nor audited: it is
  counted (``http_unauthenticated_requests_total``), and limited per client
  address by ``AUTH_FAILURE_RATE_LIMIT``, a budget of its own, so strangers
  cannot spend an authenticated caller's quotas.
"""

from __future__ import annotations

import io
import time

from flask import Flask, request
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse_many
from prometheus_client import Counter
from werkzeug.exceptions import RequestEntityTooLarge

from app import config
from app.config import Settings

UNAUTHENTICATED = Counter(
    "http_unauthenticated_requests_total",
    "Requests refused for want of valid credentials (never parsed, never audited).",
    ["outcome"],
)
AUTH_FAILURE_SCOPE = "auth-failure"


def init_edge(app: Flask, settings: Settings) -> None:
    """Before the rate limiter and auth: a refused body must not be read by them."""
    app.config["MAX_CONTENT_LENGTH"] = settings.MAX_CONTENT_LENGTH
    app.before_request(_refuse_oversized_body)


def _refuse_oversized_body() -> None:
    limit = config.current().MAX_CONTENT_LENGTH
    too_large = RequestEntityTooLarge(f"the request body is larger than {limit} bytes")
    if request.content_length is not None:
        if request.content_length > limit:
            raise too_large
        return
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        # No declared length: werkzeug would silently cut the body at the limit
        # (a truncated JSON document is a confusing 400), so the raw bytes are
        # read here, at most one past the limit, and handed on whole.
        raw = request.environ["wsgi.input"].read(limit + 1)
        if len(raw) > limit:
            raise too_large
        request.environ["wsgi.input"] = io.BytesIO(raw)
        request.environ["CONTENT_LENGTH"] = str(len(raw))


def _auth_failure_limits() -> list[RateLimitItem]:
    return list(parse_many(config.current().AUTH_FAILURE_RATE_LIMIT))


def charge_auth_failure() -> int | None:
    """Counts one failed authentication against the caller's address. None while
    within AUTH_FAILURE_RATE_LIMIT, else the seconds until it may try again."""
    from app.api.limits import limiter

    address = get_remote_address()
    wait = None
    for item in _auth_failure_limits():
        if not limiter.limiter.hit(item, AUTH_FAILURE_SCOPE, address):
            reset, _ = limiter.limiter.get_window_stats(item, AUTH_FAILURE_SCOPE, address)
            wait = max(wait or 0, max(1, int(reset - time.time())))
    UNAUTHENTICATED.labels("refused" if wait is None else "limited").inc()
    return wait
