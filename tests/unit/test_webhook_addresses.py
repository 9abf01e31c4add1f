"""Webhook address policy: an IPv6 address wrapping an IPv4 one is judged as
that IPv4 address too, whatever the wrapping (a translator delivers to it)."""

from __future__ import annotations

import pytest

from app.domain.webhook_security import url_refusal

WRAPPED_METADATA = [
    "[::ffff:169.254.169.254]",  # IPv4-mapped
    "[::169.254.169.254]",  # IPv4-compatible
    "[64:ff9b::a9fe:a9fe]",  # NAT64 well-known prefix
    "[64:ff9b:1::a9fe:a9fe]",  # NAT64 local-use prefix
    "[::ffff:0:a9fe:a9fe]",  # SIIT IPv4-translated
    "[2002:a9fe:a9fe::1]",  # 6to4
]
WRAPPED_LOOPBACK = [
    "[::ffff:127.0.0.1]",
    "[::127.0.0.1]",
    "[64:ff9b::7f00:1]",
    "[64:ff9b:1::7f00:1]",
    "[::ffff:0:7f00:1]",
    "[2002:7f00:1::1]",
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
]


@pytest.mark.parametrize("host", WRAPPED_METADATA)
def test_a_wrapped_metadata_address_is_refused_even_when_private_is_allowed(host: str) -> None:
    assert "169.254.169.254" in (url_refusal(f"http://{host}/", allow_private=True) or "")


@pytest.mark.parametrize("host", WRAPPED_LOOPBACK)
def test_a_wrapped_loopback_address_is_private(host: str) -> None:
    assert "127.0.0.1" in (url_refusal(f"http://{host}/", allow_private=False) or "")
    assert url_refusal(f"http://{host}/", allow_private=True) is None


@pytest.mark.parametrize(
    "host", ["[2606:4700::1111]", "[2002:808:808::1]", "[64:ff9b::808:808]", "hooks.example.com"]
)
def test_public_destinations_stay_allowed(host: str) -> None:
    assert url_refusal(f"http://{host}/", allow_private=False) is None
