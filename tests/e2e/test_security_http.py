"""Attacks on the HTTP edge of the running API: oversized and anonymous requests,
quota exhaustion by strangers, webhook addresses that smuggle an internal IPv4
inside IPv6, and paging past what PostgreSQL can offset."""

from __future__ import annotations

import pytest
import requests

from tests.conftest import API_PORT, Stack, department_payload

BASE = f"http://127.0.0.1:{API_PORT}"


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
