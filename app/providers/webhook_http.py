"""Outbound webhook POSTs: the HTTP side of a delivery, out of the domain.

The domain decides what to send, when and how often; this module connects.
It resolves the URL's host, refuses forbidden addresses (webhook_security's
policy), and connects to the very address it checked, whatever DNS says by
then, while Host, SNI and the certificate check still use the URL's host.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import certifi
import urllib3

from app.domain.webhook_security import IPAddress, RefusedAddress, resolve_allowed

MAX_ADDRESSES = 3  # of a multi-homed host, tried in turn when one does not connect


@dataclass(frozen=True)
class Outcome:
    kind: str  # delivered | http_error | network_error | refused
    address: str | None = None
    status_code: int | None = None
    duration_ms: float | None = None
    error: str | None = None
    connected: bool = True  # False: nothing reached this address, another may do


def send(
    url: str, body: bytes, headers: dict[str, str], allow_private: bool, timeout: float
) -> Outcome:
    """One attempt: each allowed address in turn until one connects."""
    try:
        addresses = resolve_allowed(url, allow_private)
    except RefusedAddress as exc:
        return Outcome("refused", error=str(exc))
    except OSError as exc:
        return Outcome("network_error", error=str(exc))
    last = Outcome("network_error", error="no address to connect to")
    for address in addresses[:MAX_ADDRESSES]:
        last = _post(url, address, body, headers, timeout)
        if last.connected:
            return last
    return last


def _pool(url: str, address: IPAddress, timeout: float) -> urllib3.HTTPConnectionPool:
    parts = urlsplit(url)
    host = parts.hostname or ""
    options: dict[str, Any] = {
        "timeout": urllib3.Timeout(connect=timeout, read=timeout),
        "retries": False,
        "maxsize": 1,
    }
    if parts.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            str(address),
            parts.port or 443,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            **options,
        )
    return urllib3.HTTPConnectionPool(str(address), parts.port or 80, **options)


def _request_target(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    host_header = f"[{host}]" if ":" in host else host
    if parts.port:
        host_header += f":{parts.port}"
    path = parts.path or "/"
    return (f"{path}?{parts.query}" if parts.query else path), host_header


def _post(
    url: str, address: IPAddress, body: bytes, headers: dict[str, str], timeout: float
) -> Outcome:
    path, host_header = _request_target(url)
    started = time.monotonic()
    try:
        with _pool(url, address, timeout) as pool:
            response = pool.urlopen(
                "POST",
                path,
                body=body,
                headers={**headers, "Host": host_header},
                redirect=False,  # a redirect could point anywhere, past the address check
                assert_same_host=False,
                preload_content=False,
            )
            excerpt = response.read(512, decode_content=False)
            response.release_conn()
    except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
        return Outcome("network_error", str(address), error=str(exc)[:1000], connected=False)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return Outcome("network_error", str(address), error=f"{type(exc).__name__}: {exc}"[:1000])
    elapsed = round((time.monotonic() - started) * 1000, 1)
    if 200 <= response.status < 300:
        return Outcome("delivered", str(address), response.status, elapsed)
    text = excerpt.decode("utf-8", "replace")[:300]
    error = f"HTTP {response.status}: {text}"
    return Outcome("http_error", str(address), response.status, elapsed, error)
