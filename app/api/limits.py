"""Rate limits kept in Redis, so they hold across every API process."""

from __future__ import annotations

from flask import Flask
from flask.typing import ResponseReturnValue
from flask_jwt_extended import get_jwt, verify_jwt_in_request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_remote_address

from app.api.problems import problem
from app.config import Settings


def user_or_ip() -> str:
    """Per user when a valid token is present, else per client address."""
    try:
        verify_jwt_in_request(optional=True)
        email = get_jwt().get("email")
    except Exception:
        email = None
    return f"user:{email}" if email else f"ip:{get_remote_address()}"


limiter = Limiter(key_func=user_or_ip, headers_enabled=True)


def init_limits(app: Flask, settings: Settings) -> None:
    app.config.update(
        RATELIMIT_STORAGE_URI=settings.REDIS_URL,
        RATELIMIT_DEFAULT=settings.API_RATE_LIMIT,
        RATELIMIT_HEADERS_ENABLED=True,
        RATELIMIT_KEY_PREFIX="po-limits",
    )
    limiter.init_app(app)

    @app.errorhandler(RateLimitExceeded)
    def too_many(exc: RateLimitExceeded) -> ResponseReturnValue:
        # Flask-Limiter's after_request hook adds Retry-After and X-RateLimit-*.
        return problem(429, f"rate limit exceeded: {exc.description}")
