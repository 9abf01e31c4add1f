"""The agent's token request over the standard library (issue 16 dropped
requests from the agent): answers are read whatever their status, and nothing
but http(s) without redirects is ever fetched."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from department_agent.checks import Redactor, check_oauth, post_token_request


class _TokenEndpoint(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = self.rfile.read(length).decode()
        auth = base64.b64decode(self.headers["Authorization"].split()[1]).decode()
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
            return
        ok = auth == "client-1:s3cret" and form == "grant_type=client_credentials"
        body = (
            {"access_token": "t", "token_type": "Bearer", "expires_in": 3600}
            if ok
            else {"error": "invalid_client"}
        )
        data = json.dumps(body).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_good_secret_gets_a_bearer_token(endpoint: str) -> None:
    outcome = check_oauth(f"{endpoint}/token", "client-1", "s3cret", Redactor(["s3cret"]))
    assert outcome.ok, outcome.detail
    assert outcome.data["tokenType"] == "Bearer"


def test_a_refusal_is_read_and_named(endpoint: str) -> None:
    outcome = check_oauth(f"{endpoint}/token", "client-1", "wrong", Redactor(["wrong"]))
    assert not outcome.ok
    assert outcome.detail == "token endpoint answered 401: invalid_client"


def test_a_redirect_is_not_followed(endpoint: str) -> None:
    status, _ = post_token_request(f"{endpoint}/moved", "client-1", "s3cret")
    assert status == 302


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "data:,x"])
def test_only_http_urls_are_fetched(url: str) -> None:
    outcome = check_oauth(url, "client-1", "s3cret", Redactor(["s3cret"]))
    assert not outcome.ok
    assert "must be http or https" in outcome.detail
