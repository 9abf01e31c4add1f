"""Railway's GraphQL API as a client: authentication, a request budget, rate limits, errors.

Railway answers authorization and execution failures with HTTP 200 and a GraphQL ``errors``
array (a wrong token reads ``"Not Authorized"``), invalid documents with 400, and rate
limiting with 429 and ``Retry-After`` (docs.railway.com, Public API, "Rate limits").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from app.providers.base import ProviderError, TransientProviderError
from app.providers.http import request

DEFAULT_API_URL = "https://backboard.railway.com/graphql/v2"
ACCOUNT = "account"
# Account and workspace tokens are bearer tokens; a project token has a header of its own
# and is scoped to one project and environment (docs: Public API, "Authentication").
TOKEN_HEADERS: dict[str, Callable[[str], dict[str, str]]] = {
    ACCOUNT: lambda token: {"Authorization": f"Bearer {token}"},
    "workspace": lambda token: {"Authorization": f"Bearer {token}"},
    "project": lambda token: {"Project-Access-Token": token},
}
TRANSIENT_ERROR_MARKERS = (
    "rate limit",
    "ratelimit",
    "too many requests",
    "timeout",
    "timed out",
    "temporarily unavailable",
    "try again",
)
TRANSIENT_ERROR_CODES = frozenset({"RATE_LIMITED", "TIMEOUT", "SERVICE_UNAVAILABLE"})


def graphql_error_is_transient(error: dict[str, Any]) -> bool:
    message = str(error.get("message", "")).lower()
    code = str((error.get("extensions") or {}).get("code", "")).upper()
    return code in TRANSIENT_ERROR_CODES or any(m in message for m in TRANSIENT_ERROR_MARKERS)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class RailwayGraphQL:
    """Posts GraphQL documents; every failure becomes a classified ProviderError.

    One client serves one provider call and spends at most ``budget`` requests, so a call's
    cost against Railway's hourly limit is bounded whatever Railway answers. A 429 is waited
    out when its ``Retry-After`` is at most ``max_retry_wait``; a longer one is a transient
    error the step's retry takes up later. Error text from Railway can echo variable values
    back, so every message is scrubbed of the secrets registered for the call.
    """

    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        token_kind: str,
        session: requests.Session,
        budget: int,
        max_retry_wait: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if token_kind not in TOKEN_HEADERS:
            raise ProviderError(f"unknown Railway token kind {token_kind!r}")
        self._api_url = api_url or DEFAULT_API_URL
        self._headers = TOKEN_HEADERS[token_kind](token)
        self._session = session
        self.budget = budget
        self.spent = 0
        self._max_retry_wait = max_retry_wait
        self._sleep = sleep
        self._sensitive: set[str] = {token}

    def add_sensitive(self, values: Iterable[str]) -> None:
        self._sensitive.update(v for v in values if isinstance(v, str) and v)

    def redact(self, text: str) -> str:
        for value in sorted(self._sensitive, key=len, reverse=True):
            text = text.replace(value, "***")
        return text

    @property
    def remaining(self) -> int:
        return self.budget - self.spent

    def execute(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        operation = document.split("(", 1)[0].split()[-1]
        while True:
            response = self._post(operation, document, variables)
            if response.status_code != 429:
                return self._data_or_raise(operation, response)
            self._wait_out_rate_limit(operation, response)

    def _post(self, operation: str, document: str, variables: dict[str, Any]) -> requests.Response:
        if self.spent >= self.budget:
            raise TransientProviderError(
                f"railway {operation}: request budget of {self.budget} for this call spent"
            )
        self.spent += 1
        try:
            return request(
                self._session,
                "POST",
                self._api_url,
                # 400 carries a GraphQL errors body that is read (and redacted) below.
                allow_status=frozenset({400, 429}),
                json={"query": document, "variables": variables},
                headers=self._headers,
            )
        except ProviderError as exc:
            raise type(exc)(f"railway {operation}: {self.redact(str(exc))}") from None

    def _wait_out_rate_limit(self, operation: str, response: requests.Response) -> None:
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        if wait is None or wait > self._max_retry_wait or self.remaining <= 0:
            hint = "no Retry-After" if wait is None else f"Retry-After {wait:g}s"
            raise TransientProviderError(f"railway {operation}: rate limited (429, {hint})")
        self._sleep(wait)

    def _data_or_raise(self, operation: str, response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise ProviderError(
                f"railway {operation}: non-JSON answer ({response.status_code})"
            ) from None
        if not isinstance(body, dict):
            raise ProviderError(f"railway {operation}: unexpected answer ({response.status_code})")
        errors = body.get("errors") or []
        if errors:
            text = "; ".join(str(e.get("message", e)) for e in errors)
            message = f"railway {operation}: {self.redact(text)}"
            if all(graphql_error_is_transient(e) for e in errors):
                raise TransientProviderError(message)
            raise ProviderError(message)
        if response.status_code != 200 or not isinstance(body.get("data"), dict):
            raise ProviderError(
                f"railway {operation}: answered {response.status_code} without data"
            )
        return body["data"]
