"""Rate limits hold across the two gunicorn worker processes (Redis storage)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import API_PORT, Stack, department_payload
from tests.support import stack

PORT = API_PORT + 1


@pytest.fixture(scope="module")
def limited_api(live_stack: Stack, run_dir: Path) -> Iterator[str]:
    env = {
        **live_stack.env,
        "PROVISION_RATE_LIMIT": "3 per hour",
        "API_RATE_LIMIT": "5 per minute",
        "RATELIMIT_KEY_SUFFIX": "limited",
    }
    service = stack.api_server(env, run_dir, PORT, name="api-limited").start()
    stack.wait_http(f"http://127.0.0.1:{PORT}/openapi.json")
    yield f"http://127.0.0.1:{PORT}"
    service.stop()


def test_provisioning_is_limited_per_caller(
    limited_api: str,
    admin_headers: dict[str, str],
) -> None:
    bad = department_payload(region="nowhere")  # valid requests would create jobs
    codes = [
        requests.post(
            f"{limited_api}/api/provision-department", json=bad, headers=admin_headers, timeout=10
        )
        for _ in range(4)
    ]
    assert [r.status_code for r in codes] == [422, 422, 422, 429]
    refused = codes[-1]
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json()["code"] == 429 and "rate limit" in refused.json()["message"]
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["status"] == 429 and refused.json()["title"] == "Too Many Requests"


def test_other_endpoints_are_limited_per_user_and_status_is_not(
    limited_api: str,
    admin_headers: dict[str, str],
    app: object,
) -> None:
    from tests.conftest import make_token

    other_user = {"Authorization": f"Bearer {make_token(app, email='other@example.com')}"}  # type: ignore[arg-type]
    listed = [
        requests.get(f"{limited_api}/api/departments", headers=other_user, timeout=10)
        for _ in range(6)
    ]
    assert [r.status_code for r in listed] == [200] * 5 + [429]
    missing = "00000000-0000-0000-0000-000000000000"
    statuses = [
        requests.get(
            f"{limited_api}/api/provision-status/{missing}", headers=other_user, timeout=10
        ).status_code
        for _ in range(10)
    ]
    assert statuses == [404] * 10


def test_a_refused_request_writes_no_tracing_warning(
    limited_api: str, app: object, run_dir: Path
) -> None:
    """The limiter refuses in a before_request hook: when it ran before the
    tracing hook, each 429 wrote "span missing" at WARNING, one log line per
    refused request for anyone who cares to flood the API."""
    from tests.conftest import make_token

    flooder = {"Authorization": f"Bearer {make_token(app, email='flood@example.com')}"}  # type: ignore[arg-type]
    codes = [
        requests.get(f"{limited_api}/api/departments", headers=flooder, timeout=10).status_code
        for _ in range(8)
    ]
    assert codes.count(429) == 3, codes
    log = (run_dir / "api-limited.log").read_text()
    assert "span missing" not in log, log[-2000:]
