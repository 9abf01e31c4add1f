"""Decisions at the API's edge, without a running stack: which tokens are
acceptable, which bodies are refused unread, how OAuth callers are keyed."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request

from app import config
from app.api.auth import _token_acceptable
from app.api.edge import init_edge
from app.api.limits import oauth_client
from tests.support.settings_env import REQUIRED, clear_settings_environment

DAY = 86400


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    clear_settings_environment(monkeypatch)
    previous = config._current
    config.install(config.Settings(**REQUIRED, MAX_CONTENT_LENGTH=2048, JWT_MAX_TTL_DAYS=30))
    yield
    config._current = previous


def _admin(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"email": "a@x.com", "role": "admin", "iat": now, "exp": now + DAY}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "acceptable"),
    [
        ({}, True),
        ({"exp": int(time.time()) + 30 * DAY}, True),
        ({"exp": int(time.time()) + 31 * DAY}, False),  # longer than JWT_MAX_TTL_DAYS
        # The original service's tokens carry no iat: their life is bounded from now.
        ({"iat": None}, True),
        ({"iat": None, "exp": int(time.time()) + 31 * DAY}, False),
        ({"iat": "yesterday"}, False),
        ({"exp": None}, False),
        ({"email": None}, False),
        ({"role": None}, False),
        ({"role": "department"}, False),  # without its departmentId
    ],
)
def test_which_tokens_are_acceptable(changes: dict[str, Any], acceptable: bool) -> None:
    assert _token_acceptable(_admin(**changes)) is acceptable


def test_a_token_without_jti_is_identified_by_its_whole_payload() -> None:
    from app.api.token_blocklist import token_id

    original = {"email": "a@x.com", "role": "admin", "exp": 2_000_000_000}
    assert token_id(original) == token_id(dict(reversed(original.items())))
    assert token_id(original) != token_id({**original, "exp": 2_000_000_001})
    assert token_id({**original, "jti": "abc"}) == "abc"


def _edge_app() -> Flask:
    app = Flask(__name__)
    init_edge(app, config.current())
    app.add_url_rule("/echo", "echo", lambda: str(len(request.get_data())), methods=["POST"])
    return app


def test_a_declared_length_over_the_limit_is_413_unread() -> None:
    stream = io.BytesIO(b"x" * 4096)
    response = (
        _edge_app()
        .test_client()
        .post("/echo", input_stream=stream, headers={"Content-Length": "4096"})
    )
    assert response.status_code == 413
    assert stream.tell() == 0  # not a byte was read


@pytest.mark.parametrize(("size", "status"), [(2048, 200), (2049, 413)])
def test_a_chunked_body_is_held_to_the_limit_whole(size: int, status: int) -> None:
    environ = {"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"}
    response = (
        _edge_app()
        .test_client()
        .post("/echo", input_stream=io.BytesIO(b"y" * size), environ_base=environ)
    )
    assert response.status_code == status
    if status == 200:
        assert response.get_data(as_text=True) == str(size)  # not cut short


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"headers": {"Authorization": "Basic ZGVwdC1hOnNlY3JldA=="}}, "oauth-client:dept-a"),
        ({"data": {"client_id": "dept-b", "client_secret": "s"}}, "oauth-client:dept-b"),
        ({"data": {"grant_type": "client_credentials"}}, "ip:127.0.0.1"),
    ],
)
def test_oauth_requests_are_keyed_by_client_when_they_name_one(
    kwargs: dict[str, Any], key: str
) -> None:
    with Flask(__name__).test_request_context("/oauth/token", method="POST", **kwargs):
        assert oauth_client() == key
