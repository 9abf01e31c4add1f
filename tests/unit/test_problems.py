"""RFC 9457 problem details from every kind of HTTP error (no stack needed)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask_smorest import abort

from app.api.problems import PROBLEM_MEDIA_TYPE, init_problems, problem


@pytest.fixture()
def client() -> Any:
    app = Flask(__name__)
    init_problems(app)

    @app.get("/validation")
    def validation() -> Any:
        abort(422, message="invalid", errors={"json": {"region": ["not allowed"]}})

    @app.get("/retry")
    def retry() -> Any:
        abort(503, message="busy", headers={"Retry-After": "5"})

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("secret internals: password=hunter2")

    @app.get("/custom")
    def custom() -> Any:
        return problem(403, "scoped to another department")

    return app.test_client()


def _assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.mimetype == PROBLEM_MEDIA_TYPE
    body = response.get_json(force=True)
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert body["status"] == status and body["type"] == "about:blank"
    # Earlier clients read code/message: they must keep working.
    assert body["code"] == status and body["message"] == body["detail"]
    return body


def test_validation_errors_keep_their_fields(client: Any) -> None:
    body = _assert_problem(client.get("/validation"), 422)
    assert body["title"] in {"Unprocessable Content", "Unprocessable Entity"}
    assert body["detail"] == "invalid" and body["instance"] == "/validation"
    assert body["errors"] == {"json": {"region": ["not allowed"]}}


def test_unknown_path_and_wrong_method(client: Any) -> None:
    _assert_problem(client.get("/nowhere"), 404)
    refused = client.post("/validation")
    _assert_problem(refused, 405)
    assert "GET" in refused.headers["Allow"]


def test_headers_passed_to_abort_are_kept(client: Any) -> None:
    response = client.get("/retry")
    assert _assert_problem(response, 503)["detail"] == "busy"
    assert response.headers["Retry-After"] == "5"


def test_an_unhandled_exception_is_a_500_problem_without_internals(client: Any) -> None:
    body = _assert_problem(client.get("/boom"), 500)
    assert "hunter2" not in str(body) and "RuntimeError" not in str(body)


def test_problems_built_outside_abort(client: Any) -> None:
    assert _assert_problem(client.get("/custom"), 403)["detail"] == "scoped to another department"
