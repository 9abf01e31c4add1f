"""Real pieces for OAuth tests: a throwaway PostgreSQL database, the authorization
server mounted on a minimal Flask app served over a real socket, and an in-memory
SecretStore."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg2
from flask import Flask
from psycopg2 import sql
from werkzeug.serving import make_server

from app.config import Settings
from app.oauth import init_oauth  # importing it registers oauth_clients/oauth_tokens on Base
from app.persistence.database import db
from app.persistence.models import Base
from app.providers.base import DepartmentContext

ADMIN_DSN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
TEST_JWT_SECRET = "oauth-test-jwt-secret-" + "x" * 32
TEST_ISSUER = "http://orchestrator.test"


class MemorySecrets:
    """A SecretStore kept in a dict; tests may read ``values`` directly."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def put(self, name: str, value: str) -> None:
        self.values[name] = value

    def delete(self, name: str) -> None:
        self.values.pop(name, None)


def department_context(
    department_id: str, tools: list[str] | None = None, secrets: MemorySecrets | None = None
) -> DepartmentContext:
    return DepartmentContext(
        department_id=department_id,
        config={"enabledTools": list(tools or [])},
        resources={},
        secrets=secrets or MemorySecrets(),
    )


def _admin(statement: sql.Composable) -> None:
    connection = psycopg2.connect(**ADMIN_DSN)
    try:
        connection.autocommit = True  # CREATE/DROP DATABASE refuse to run in a transaction
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A fresh database holding every table on Base; ``db`` points at it meanwhile."""
    name = f"oauth_test_{uuid.uuid4().hex[:12]}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    try:
        db.init(url)
        Base.metadata.create_all(db.engine)
        yield url
    finally:
        db.engine.dispose()  # closes pooled connections so the DROP is not refused
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def oauth_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "SECRETS_KEY": "unused-by-these-tests",
        "OAUTH_ISSUER": TEST_ISSUER,
        "OAUTH_TOKEN_TTL": 600,
    }
    values.update(overrides)
    return Settings(**values)


def create_oauth_app(settings: Settings) -> Flask:
    flask_app = Flask("oauth-test")
    flask_app.config.update(TESTING=True)
    init_oauth(flask_app, settings)
    return flask_app


@dataclass
class ServedApp:
    """The Flask app on 127.0.0.1:<ephemeral port> in a background thread."""

    flask_app: Flask
    base_url: str = ""
    _server: Any = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __enter__(self) -> ServedApp:
        self._server = make_server("127.0.0.1", 0, self.flask_app, threaded=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token"
