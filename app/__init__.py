"""The Provisioning Orchestrator: one REST call turns a department's
configuration into a running, isolated instance of its stack."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import config


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    settings = config.load_settings(overrides)
    if not settings.JWT_SECRET:
        # Development only (config.validate refuses this elsewhere): tokens last
        # until restart. `make env` writes a persistent one to .env.
        logging.getLogger("provisioning").warning("JWT_SECRET unset: using a random one")
        settings = settings.model_copy(update={"JWT_SECRET": secrets.token_urlsafe(48)})
    config.install(settings)
    from app.observability.logs import configure_logging

    configure_logging(settings)

    app = Flask(__name__)
    app.config.update(_openapi_settings())
    if settings.TRUSTED_PROXIES:
        # The client is the address the outermost trusted proxy saw; limits, audit
        # and /metrics' loopback rule then apply to it, not to the proxy.
        hops = settings.TRUSTED_PROXIES
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    from app.persistence.database import db

    db.init(settings.DATABASE_URL)
    _init_extensions(app, settings)
    _check_secrets_key(app, settings)
    return app


def _check_secrets_key(app: Flask, settings: config.Settings) -> None:
    """Stored secrets that the configured key cannot open are named once, here,
    instead of as an InvalidToken in every job that touches them."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.domain.services.secrets_keys import check_stored_secrets

    try:
        result = check_stored_secrets(settings.SECRETS_KEY)
    except SQLAlchemyError as exc:
        # No database yet (before `make migrate`) or unreachable: not this check's to report.
        logging.getLogger("provisioning").debug("secrets key check skipped: %s", exc)
        return
    app.extensions["secrets_key_check"] = result
    if result.ok:
        return
    # The CLI refuses per command instead, so that `flask secrets` can still help.
    if settings.is_production and not _under_flask_cli():
        raise config.ConfigError(result.line())
    logging.getLogger("provisioning").error(result.line())


def _under_flask_cli() -> bool:
    import click
    from flask.cli import ScriptInfo

    context = click.get_current_context(silent=True)
    return context is not None and context.find_object(ScriptInfo) is not None


def _openapi_settings() -> dict[str, Any]:
    return {
        "API_TITLE": "Provisioning Orchestrator",
        "API_VERSION": "1.0.0",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/api-docs",
        "OPENAPI_SWAGGER_UI_URL": "/static/swagger-ui/",
        "OPENAPI_REDOC_PATH": "/redoc",
        "OPENAPI_REDOC_URL": "/static/redoc/redoc.standalone.js",
        "API_SPEC_OPTIONS": {
            "security": [{"bearerAuth": []}],
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                }
            },
        },
    }


def _init_extensions(app: Flask, settings: config.Settings) -> None:
    """Order matters: request ids and auth wrap everything registered after them,
    and subscribers must be in place before Celery can run a task."""
    from app.celery_app import celery_init_app
    from app.cli import register_cli

    _init_http(app, settings)
    _register_api(app)
    _init_pages(app)
    _init_event_subscribers(app)
    celery_init_app(app, settings)
    _init_webhooks()
    register_cli(app)


def _init_http(app: Flask, settings: config.Settings) -> None:
    from app.api.auth import init_auth
    from app.api.edge import init_edge
    from app.api.limits import init_limits
    from app.api.problems import init_problems
    from app.api.security_headers import init_security_headers
    from app.observability.logs import init_request_ids
    from app.observability.tracing import init_tracing

    # Tracing first: a hook that answers early (the limiter's 429, the edge's
    # 413) must find the request's span already started.
    init_tracing(app)
    init_request_ids(app)
    init_edge(app, settings)
    init_auth(app, settings.JWT_SECRET)
    init_security_headers(app, settings)
    init_limits(app, settings)
    init_problems(app)


def _register_api(app: Flask) -> None:
    """The JSON API, documented in /openapi.json."""
    from app.api import audit, departments, kpis, live_progress, provisioning, webhooks
    from app.api.converters import init_converters
    from app.api.openapi import ContractApi

    api = ContractApi(app)
    init_converters(app, api)
    for module in (provisioning, departments, live_progress, audit, webhooks, kpis):
        api.register_blueprint(module.blp)


def _init_pages(app: Flask) -> None:
    """OAuth endpoints (with limits of their own), the dashboard and the docs:
    outside the API's rate limits."""
    from app.api.limits import limit_oauth, limiter
    from app.dashboard import init_dashboard
    from app.oauth import init_oauth, oauth_bp

    init_oauth(app)
    limit_oauth(oauth_bp)
    init_dashboard(app)
    for name in ("api-docs", "static"):
        if name in app.blueprints:
            limiter.exempt(app.blueprints[name])  # type: ignore[call-overload]


def _init_event_subscribers(app: Flask) -> None:
    from app.api.limits import limiter
    from app.observability.prometheus import exposition, init_metrics
    from app.observability.stream import init_live_stream

    init_metrics(app)
    limiter.exempt(exposition)  # Prometheus scrapes are not API calls
    init_live_stream(app)


def _init_webhooks() -> None:
    """Every process that commits job transitions (API, worker, CLI) notifies,
    and gives a waiting job the place of one that ended."""
    from app.domain.services import admission, webhooks

    webhooks.install()
    admission.install()
