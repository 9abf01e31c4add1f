"""HTTP calls to components, with failures sorted into transient and permanent."""

from __future__ import annotations

from typing import Any

import requests

from app.providers.base import ProviderError, TransientProviderError

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
DEFAULT_TIMEOUT = (3.05, 15)


def request(
    session: requests.Session,
    method: str,
    url: str,
    *,
    allow_status: frozenset[int] = frozenset(),
    **kwargs: Any,
) -> requests.Response:
    """Send one request; raise TransientProviderError or ProviderError on failure.

    ``allow_status`` lists non-2xx codes the caller handles itself (e.g. 404 on
    an idempotent delete).
    """
    kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
    try:
        response = session.request(method, url, **kwargs)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientProviderError(f"{method} {url}: {exc.__class__.__name__}: {exc}") from exc
    if response.ok or response.status_code in allow_status:
        return response
    message = f"{method} {url} answered {response.status_code}: {response.text[:300]}"
    if response.status_code in TRANSIENT_STATUS:
        raise TransientProviderError(message)
    raise ProviderError(message)
