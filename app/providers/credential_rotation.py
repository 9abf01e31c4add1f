"""Rotating a department's credentials while its agent keeps serving.

The order is what keeps every request working:

1. new tenant database password and OAuth client secret, stored (``*_next``)
   before anything else, so a retry reuses them;
2. the new OAuth secret made valid alongside the old one;
3. both handed to the running agent: database passwords [new, old] (it tries
   them in order), the new OAuth secret; wait until its /health, through the
   gateway, shows it holds them;
4. the role's password switched (PostgreSQL keeps one per role: this is the
   moment the old password stops working, and the agent already has the new);
5. wait until the agent's /health shows it connects with the new password and
   obtains tokens with the new secret;
6. only then the old OAuth secret revoked, the stored secrets replaced, and the
   agent handed the new credentials alone.

Every phase is idempotent, so a retried or resumed step just goes on; a
rotation that fails half-way leaves a department whose agent still works.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import requests

from app.providers.base import (
    CheckResult,
    DepartmentContext,
    ProviderError,
    Stopwatch,
    TransientProviderError,
)
from app.providers.database_postgres import PASSWORD_SECRET
from app.providers.oauth_builtin import SECRET_NAME

NEXT = "_next"
WAIT_SECONDS = 15.0


class PasswordSetter(Protocol):
    def set_password(self, context: DepartmentContext, password: str) -> None: ...


class SecretStager(Protocol):
    def stage_secret(self, context: DepartmentContext, secret: str) -> None: ...

    def commit_secret(self, context: DepartmentContext, secret: str) -> None: ...


class CredentialReceiver(Protocol):
    """A container runtime that can give a running agent new credentials."""

    def hand_over(
        self, context: DepartmentContext, database_passwords: list[str], oauth_secret: str
    ) -> None: ...


def fingerprint(secret: str) -> str:
    """The agent reports these (department_agent/credentials.py)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class CredentialRotator:
    name = "credentials"

    def __init__(
        self,
        *,
        database: PasswordSetter,
        oauth: SecretStager,
        container: object,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        self._database = database
        self._oauth = oauth
        self._container = container
        self._wait_seconds = wait_seconds

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        receiver = self._receiver()
        new_password, new_secret = _staged(context, PASSWORD_SECRET), _staged(context, SECRET_NAME)
        old_password = _required(context, PASSWORD_SECRET)
        self._oauth.stage_secret(context, new_secret)
        receiver.hand_over(context, _unique([new_password, old_password]), new_secret)
        self._wait_for_agent(context, held=fingerprint(new_password), oauth=fingerprint(new_secret))
        self._database.set_password(context, new_password)
        context.secrets.put(PASSWORD_SECRET, new_password)  # what the role now has
        self._wait_for_agent(context, used=fingerprint(new_password), oauth=fingerprint(new_secret))
        context.secrets.put(SECRET_NAME, new_secret)
        self._oauth.commit_secret(context, new_secret)  # the old secret stops working here
        receiver.hand_over(context, [new_password], new_secret)
        for name in (PASSWORD_SECRET, SECRET_NAME):
            context.secrets.delete(name + NEXT)
        return {
            "rotatedAt": datetime.now(UTC).isoformat(),
            "databasePassword": fingerprint(new_password),
            "oauthClientSecret": fingerprint(new_secret),
        }

    def delete(self, context: DepartmentContext) -> None:
        """Nothing to remove: until a rotation completes the old credentials work."""

    def check(self, context: DepartmentContext) -> CheckResult:
        watch = Stopwatch()
        pending = [n for n in (PASSWORD_SECRET, SECRET_NAME) if context.secrets.get(n + NEXT)]
        detail = f"rotation under way: {', '.join(pending)}" if pending else ""
        return CheckResult("credentials", not pending, watch.elapsed_ms, detail)

    def _receiver(self) -> CredentialReceiver:
        inner = getattr(self._container, "inner", self._container)  # unwrap test faults
        if not hasattr(inner, "hand_over"):
            raise ProviderError(
                f"the {getattr(inner, 'name', 'container')} runtime cannot hand credentials "
                "to a running agent; credential rotation needs the local runtime"
            )
        return cast(CredentialReceiver, inner)

    def _wait_for_agent(self, context: DepartmentContext, **wanted: str) -> None:
        """Until the agent's /health (through the gateway) reports ``wanted``."""
        url = (context.resources.get("configure_gateway") or {}).get("url")
        if not url:
            raise ProviderError(f"no gateway route recorded for {context.department_id}")
        deadline = time.monotonic() + self._wait_seconds
        seen: dict[str, Any] = {}
        while time.monotonic() < deadline:
            seen = _reported(url)
            if _matches(seen, wanted):
                return
            time.sleep(0.2)
        raise TransientProviderError(
            f"agent of {context.department_id} did not take the new credentials "
            f"(wanted {wanted}, it reports {seen})"
        )


def _reported(url: str) -> dict[str, Any]:
    try:
        body = requests.get(url.rstrip("/") + "/health", timeout=(3, 10)).json()
    except (requests.RequestException, ValueError):
        return {}
    credentials = dict(body.get("credentials") or {}) if isinstance(body, dict) else {}
    database = ((body.get("checks") or {}).get("database") or {}) if credentials else {}
    credentials["used"] = database.get("credential") if body.get("status") == "ok" else None
    return credentials


def _matches(seen: dict[str, Any], wanted: dict[str, str]) -> bool:
    if "held" in wanted and wanted["held"] not in (seen.get("databaseHeld") or []):
        return False
    if "used" in wanted and seen.get("used") != wanted["used"]:
        return False
    return seen.get("oauth") == wanted.get("oauth", seen.get("oauth"))


def _staged(context: DepartmentContext, name: str) -> str:
    value = context.secrets.get(name + NEXT)
    if value is None:
        value = secrets.token_urlsafe(32)
        context.secrets.put(name + NEXT, value)
    return value


def _required(context: DepartmentContext, name: str) -> str:
    value = context.secrets.get(name)
    if not value:
        raise ProviderError(f"{context.department_id} has no stored {name} to rotate")
    return value


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))
