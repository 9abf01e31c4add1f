"""HTTP endpoints of the authorization server: token (RFC 6749), introspect (RFC 7662),
revoke (RFC 7009). Errors are answered by Authlib itself in OAuth's JSON format, so
no app-wide error handler is registered here."""

from __future__ import annotations

from authlib.integrations.flask_oauth2 import AuthorizationServer
from flask import Blueprint, Flask, Response, current_app

from app import config
from app.config import Settings
from app.oauth.endpoints import (
    DepartmentIntrospectionEndpoint,
    DepartmentRevocationEndpoint,
    create_server,
)

EXTENSION_KEY = "oauth_authorization_server"

oauth_bp = Blueprint("oauth", __name__, url_prefix="/oauth")


def _server() -> AuthorizationServer:
    return current_app.extensions[EXTENSION_KEY]


@oauth_bp.post("/token")
def issue_token() -> Response:
    return _server().create_token_response()


@oauth_bp.post("/introspect")
def introspect_token() -> Response:
    return _server().create_endpoint_response(DepartmentIntrospectionEndpoint.ENDPOINT_NAME)


@oauth_bp.post("/revoke")
def revoke_token() -> Response:
    return _server().create_endpoint_response(DepartmentRevocationEndpoint.ENDPOINT_NAME)


def init_oauth(app: Flask, settings: Settings | None = None) -> None:
    """Configures the authorization server for ``app`` and mounts ``/oauth/*``.

    ``settings`` defaults to the process-wide settings installed by create_app; the
    database must already be initialised with ``db.init`` before the first request.
    """
    settings = settings or config.current()
    app.extensions[EXTENSION_KEY] = create_server(app, settings)
    app.register_blueprint(oauth_bp)
