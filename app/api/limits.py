"""Rate limits kept in Redis, so they hold across every API process."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request
from flask.typing import ResponseReturnValue
from flask_jwt_extended import get_jwt
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_remote_address

from app import config
from app.api.auth import verify_token_once
from app.api.problems import problem
from app.config import Settings


def user_or_ip() -> str:
    """Per user when a valid token is present, else per client address (no
    token, or one the view's check will refuse with its 401)."""
    try:
        verify_token_once()
        email = get_jwt().get("email")
    except Exception:
        email = None
    return f"user:{email}" if email else f"ip:{get_remote_address()}"


limiter = Limiter(key_func=user_or_ip, headers_enabled=True)


def client_address() -> str:
    return f"ip:{get_remote_address()}"


def oauth_client() -> str:
    """The OAuth client a request speaks for (HTTP Basic or the form's client_id):
    each client's attempts are bounded whatever addresses they come from."""
    auth = request.authorization
    client_id = auth.username if auth and auth.username else request.form.get("client_id")
    return f"oauth-client:{str(client_id)[:64]}" if client_id else client_address()


def _oauth_address_limit() -> str:
    return config.current().OAUTH_RATE_LIMIT


def _oauth_client_limit() -> str:
    return config.current().OAUTH_CLIENT_RATE_LIMIT


def refused(response: Response) -> bool:
    return response.status_code >= 400


def limit_oauth(blueprint: Blueprint) -> None:
    """/oauth/* is limited per OAuth client (every request) and per client
    address (failed requests only), instead of the API's per-user default.

    Every department's agent on one host, or behind one NAT, shares an address:
    counting their successful exchanges there refused the 61st agent of a burst
    its token within the minute, and its deployment check failed (issue 16's
    300 at once). Guessing fails, so it still spends the address's budget."""
    # Module-level callables, so a second create_app in one process adds nothing new.
    limiter.limit(_oauth_address_limit, key_func=client_address, override_defaults=True,
                  scope="client_address", deduct_when=refused)(blueprint)  # fmt: skip
    limiter.limit(_oauth_client_limit, key_func=oauth_client, override_defaults=True,
                  scope="oauth_client")(blueprint)  # fmt: skip


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
