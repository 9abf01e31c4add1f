"""The Provisioning Orchestrator: one REST call turns a department's
configuration into a running, isolated instance of its stack."""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from typing import Any

from flask import Flask

from app import config


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    settings = config.load_settings(overrides)
    if not settings.JWT_SECRET:
        # Development only (config.validate refuses this elsewhere): tokens last
        # until restart. `make env` writes a persistent one to .env.
        logging.getLogger("provisioning").warning("JWT_SECRET unset: using a random one")
        settings = replace(settings, JWT_SECRET=secrets.token_urlsafe(48))
    config.install(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    app = Flask(__name__)
    app.config.update(_openapi_settings())

    from app.persistence.database import db

    db.init(settings.DATABASE_URL)
    _init_extensions(app, settings)
    return app


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
    from flask_smorest import Api

    from app.api import departments, provisioning
    from app.api.auth import init_auth
    from app.api.limits import init_limits, limiter
    from app.celery_app import celery_init_app
    from app.cli import register_cli
    from app.oauth import init_oauth

    init_auth(app, settings.JWT_SECRET)
    init_limits(app, settings)
    api = Api(app)
    api.register_blueprint(provisioning.blp)
    api.register_blueprint(departments.blp)
    init_oauth(app)
    for name in ("oauth", "api-docs", "static"):
        if name in app.blueprints:
            limiter.exempt(app.blueprints[name])
    celery_init_app(app, settings)
    register_cli(app)
