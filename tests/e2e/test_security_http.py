"""Attacks on the HTTP edge of the running API: oversized and anonymous requests,
quota exhaustion by strangers, webhook addresses that smuggle an internal IPv4
inside IPv6, and paging past what PostgreSQL can offset."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import requests
from flask import Flask

from tests.conftest import (
    API_PORT,
    SLOT,
    TEST_DB,
    Stack,
    department_payload,
    make_token,
    new_department_id,
)
from tests.e2e.conftest import submit, wait_for_job
from tests.support import stack

BASE = f"http://127.0.0.1:{API_PORT}"
STRICT_PORT = 30000 + 1000 * SLOT + 7
PROXIED_PORT = 30000 + 1000 * SLOT + 8


@pytest.mark.parametrize(
    "host",
    [
        "[::169.254.169.254]",  # IPv4-compatible
        "[2002:a9fe:a9fe::1]",  # 6to4
        "[64:ff9b:1::a9fe:a9fe]",  # NAT64, local-use prefix
        "[::ffff:0:a9fe:a9fe]",  # SIIT IPv4-translated
        "[::127.0.0.1]",  # loopback, WEBHOOK_ALLOW_PRIVATE off
        "[2002:7f00:1::1]",
    ],
)
def test_a_callback_url_wrapping_an_internal_ipv4_in_ipv6_is_refused(
    live_stack: Stack, admin_headers: dict[str, str], host: str
) -> None:
    payload = department_payload(callbackUrl=f"http://{host}/hook")
    response = requests.post(
        f"{BASE}/api/provision-department", json=payload, headers=admin_headers, timeout=10
    )
    assert response.status_code == 422, response.text
    assert "callbackUrl" in response.json()["errors"]["json"]


@pytest.mark.parametrize("page", [10**6, 10**18, 2**63])
def test_a_huge_page_number_is_a_422_not_a_500(
    live_stack: Stack, admin_headers: dict[str, str], page: int
) -> None:
    response = requests.get(
        f"{BASE}/api/departments", params={"page": page}, headers=admin_headers, timeout=10
    )
    assert response.status_code == 422, response.text
    assert "page" in response.json()["errors"]["query"]


# --- request size ---------------------------------------------------------------------


def _declared_but_unsent(path: str, headers: dict[str, str], declared: int) -> bytes:
    """Declares a 50 MB body, sends 1 KB of it, and reads what the API answers."""
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{API_PORT}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["Content-Type: application/json", f"Content-Length: {declared}", "", ""]
    with socket.create_connection(("127.0.0.1", API_PORT), timeout=10) as conn:
        conn.sendall("\r\n".join(lines).encode() + b'{"departmentId": "' + b"x" * 1024)
        try:
            return conn.recv(4096)
        except TimeoutError:
            return b"(no answer in 10 s: the API is waiting to read the whole body)"


@pytest.mark.parametrize("authorized", [False, True])
def test_an_oversized_body_is_413_before_it_is_read(
    live_stack: Stack, admin_headers: dict[str, str], authorized: bool
) -> None:
    headers = admin_headers if authorized else {}
    answer = _declared_but_unsent("/api/provision-department", headers, 50 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_chunked_body_over_the_limit_is_413(
    live_stack: Stack, admin_headers: dict[str, str]
) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies as it is read
        yield b'{"departmentId": "zz", "customConfig": {"a": "'
        for _ in range(64):
            yield b"y" * 32 * 1024
        yield b'"}}'

    response = requests.post(
        f"{BASE}/api/provision-department",
        data=chunks(),
        headers={**admin_headers, "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413, response.text[:300]


# --- strangers --------------------------------------------------------------------------


def _audit_rows_about(target: str) -> int:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM audit_log WHERE target = %s", (target,))
            return int((cur.fetchone() or (0,))[0])
    finally:
        conn.close()


def _unauthenticated_count() -> float:
    text = requests.get(f"{BASE}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("http_unauthenticated_requests_total{")
    )


def test_anonymous_requests_are_counted_not_audited(live_stack: Stack) -> None:
    department_id = new_department_id()
    before = _unauthenticated_count()
    for _ in range(5):
        response = requests.post(
            f"{BASE}/api/provision-department", json=department_payload(department_id), timeout=10
        )
        assert response.status_code == 401
        gone = requests.delete(f"{BASE}/api/deprovision/{department_id}", timeout=10)
        assert gone.status_code == 401
    assert _audit_rows_about(department_id) == 0
    assert _unauthenticated_count() - before >= 10


@pytest.fixture(scope="module")
def strict_api(live_stack: Stack, run_dir: Path) -> Iterator[str]:
    """An API whose quotas are small enough to exhaust in a test."""
    env = {
        **live_stack.env,
        "PROVISION_RATE_LIMIT": "3 per hour",
        "AUTH_FAILURE_RATE_LIMIT": "5 per minute",
        "OAUTH_RATE_LIMIT": "8 per minute",
        "OAUTH_CLIENT_RATE_LIMIT": "3 per minute",
    }
    service = stack.api_server(env, run_dir, STRICT_PORT, name="api-strict").start()
    stack.wait_http(f"http://127.0.0.1:{STRICT_PORT}/openapi.json")
    yield f"http://127.0.0.1:{STRICT_PORT}"
    service.stop()


def test_strangers_do_not_spend_an_admins_provisioning_quota(strict_api: str, app: Flask) -> None:
    admin = {"Authorization": f"Bearer {make_token(app, email=f'{uuid.uuid4().hex}@ex.com')}"}
    invalid = department_payload(region="nowhere")  # valid requests would create jobs
    url = f"{strict_api}/api/provision-department"
    strangers = [requests.post(url, json=invalid, timeout=10).status_code for _ in range(3)]
    assert strangers == [401, 401, 401]
    mine = [requests.post(url, json=invalid, headers=admin, timeout=10) for _ in range(4)]
    assert [r.status_code for r in mine] == [422, 422, 422, 429]


def test_failed_authentication_is_limited_per_address_and_spares_valid_callers(
    strict_api: str, admin_headers: dict[str, str]
) -> None:
    url = f"{strict_api}/api/departments"
    bad = {"Authorization": "Bearer not.a.jwt"}
    answers = [requests.get(url, headers=bad, timeout=10) for _ in range(7)]
    codes = [r.status_code for r in answers]
    # 5 per minute from this address (the test above may have spent some already)
    refused = codes.index(429) if 429 in codes else len(codes)
    assert refused <= 5 and codes == [401] * refused + [429] * (7 - refused), codes
    assert int(answers[-1].headers["Retry-After"]) > 0
    assert requests.get(url, headers=admin_headers, timeout=10).status_code == 200


# --- clients behind a reverse proxy ------------------------------------------------------


def _auth_failures(url: str, forwarded_for: str, count: int) -> list[int]:
    headers = {"Authorization": "Bearer not.a.jwt", "X-Forwarded-For": forwarded_for}
    return [requests.get(url, headers=headers, timeout=10).status_code for _ in range(count)]


def test_a_forged_forwarded_for_does_not_buy_fresh_budgets(strict_api: str) -> None:
    """No proxy trusted (the default): X-Forwarded-For is the client's own claim."""
    url = f"{strict_api}/api/departments"
    codes = [_auth_failures(url, f"198.51.100.{n}", 1)[0] for n in range(7)]
    assert codes[-2:] == [429, 429], codes


@pytest.fixture(scope="module")
def proxied_api(live_stack: Stack, run_dir: Path) -> Iterator[str]:
    """An API behind one trusted proxy (TRUSTED_PROXIES=1), with a small auth budget."""
    env = {**live_stack.env, "TRUSTED_PROXIES": "1", "AUTH_FAILURE_RATE_LIMIT": "5 per minute"}
    service = stack.api_server(env, run_dir, PROXIED_PORT, name="api-proxied").start()
    stack.wait_http(f"http://127.0.0.1:{PROXIED_PORT}/openapi.json")
    yield f"http://127.0.0.1:{PROXIED_PORT}"
    service.stop()


def test_clients_behind_a_trusted_proxy_are_limited_one_by_one(proxied_api: str) -> None:
    url = f"{proxied_api}/api/departments"
    noisy = _auth_failures(url, "203.0.113.10", 7)
    assert noisy[:5] == [401] * 5 and noisy[5:] == [429, 429], noisy
    # Another client of the same proxy (same TCP peer) keeps its own budget.
    assert _auth_failures(url, "203.0.113.11", 1) == [401]


def test_metrics_through_a_proxy_is_not_a_loopback_request(proxied_api: str) -> None:
    """The proxy connects from loopback; the client it forwards is not loopback."""
    remote = {"X-Forwarded-For": "203.0.113.12"}
    assert requests.get(f"{proxied_api}/metrics", headers=remote, timeout=10).status_code == 403
    local = {"X-Forwarded-For": "127.0.0.1"}
    assert requests.get(f"{proxied_api}/metrics", headers=local, timeout=10).status_code == 200


# --- the OAuth server -------------------------------------------------------------------


def _wrong_secret(base: str, client_id: str) -> int:
    """One token request with a secret that is not the client's."""
    return requests.post(
        f"{base}/oauth/token",
        auth=(client_id, "wrong-secret"),
        data={"grant_type": "client_credentials"},
        timeout=10,
    ).status_code


def _client_with_secret() -> tuple[str, str]:
    """A department's OAuth client, written straight into the state database."""
    from app.oauth.models import hash_secret

    client_id, secret = f"dept-{new_department_id()}", uuid.uuid4().hex
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO oauth_clients (client_id, department_id, secret_hash, scopes,"
                " grant_types, audience, created_at, updated_at) VALUES"
                " (%s, %s, %s, '[]', '[\"client_credentials\"]', 'a', now(), now())",
                (client_id, client_id[5:], hash_secret(secret)),
            )
    finally:
        conn.close()
    return client_id, secret


def test_agents_sharing_an_address_all_get_their_tokens(strict_api: str) -> None:
    """OAUTH_RATE_LIMIT is 8 per minute here. Ten agents on one host exchange their
    secrets once each, as a burst of departments starting does: counted per address,
    the ninth was refused and its deployment check failed (300 at once: 2 failed)."""
    clients = [_client_with_secret() for _ in range(10)]
    codes = [
        requests.post(f"{strict_api}/oauth/token", auth=client, timeout=10,
                      data={"grant_type": "client_credentials"}).status_code
        for client in clients
    ]  # fmt: skip
    assert codes == [200] * 10, codes


def test_oauth_guessing_is_limited_per_client_and_per_address(strict_api: str) -> None:
    guessed = f"dept-{new_department_id()}"
    assert [_wrong_secret(strict_api, guessed) for _ in range(4)] == [401, 401, 401, 429]
    assert _wrong_secret(strict_api, f"dept-{new_department_id()}") == 401  # another client
    # Spreading the guesses over clients still meets the per-address limit.
    others = [_wrong_secret(strict_api, f"dept-{new_department_id()}") for _ in range(5)]
    assert 429 in others, others


def test_beat_purges_expired_oauth_tokens(live_stack: Stack) -> None:
    client_id, jti = f"dept-{new_department_id()}", uuid.uuid4().hex
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO oauth_clients (client_id, department_id, secret_hash, scopes, "
                "grant_types, audience, created_at, updated_at) VALUES "
                "(%s, %s, 'x', '[]', '[]', 'a', now(), now())",
                (client_id, client_id[5:]),
            )
            cur.execute(
                "INSERT INTO oauth_tokens (jti, client_id, scope, issued_at, expires_at, revoked) "
                "VALUES (%s, %s, '', now() - interval '2 hours', now() - interval '1 hour', false)",
                (jti, client_id),
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                cur.execute("SELECT count(*) FROM oauth_tokens WHERE jti = %s", (jti,))
                if (cur.fetchone() or (1,))[0] == 0:
                    break
                time.sleep(0.5)
            cur.execute("SELECT count(*) FROM oauth_tokens WHERE jti = %s", (jti,))
            remaining = (cur.fetchone() or (1,))[0]
            cur.execute("DELETE FROM oauth_clients WHERE client_id = %s", (client_id,))
    finally:
        conn.close()
    assert remaining == 0, "beat never purged the expired token"


def _tokens_of(client_id: str) -> int:
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=TEST_DB)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM oauth_tokens WHERE client_id = %s", (client_id,))
            return int((cur.fetchone() or (0,))[0])
    finally:
        conn.close()


def test_hammering_an_agents_health_does_not_mint_a_token_each_time(
    live_stack: Stack, app: Flask, admin_headers: dict[str, str]
) -> None:
    client = app.test_client()
    payload = department_payload()
    department_id = payload["departmentId"]
    assert wait_for_job(submit(client, admin_headers, payload), 180)["status"] == "completed"
    health = f"{live_stack.env['GATEWAY_PUBLIC_URL']}/departments/{department_id}/health"
    before = _tokens_of(f"dept-{department_id}")

    answers = [requests.get(health, timeout=10) for _ in range(10)]

    assert all(a.status_code == 200 and a.json()["checks"]["oauth"]["ok"] for a in answers)
    assert _tokens_of(f"dept-{department_id}") - before <= 1
    removal = client.delete(f"/api/deprovision/{department_id}", headers=admin_headers)
    wait_for_job(str(removal.get_json()["provisioningId"]), 120)
