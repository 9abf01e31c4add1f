"""OAuth credentials: a confidential client on the orchestrator's own authorization server.

The client row lives in the orchestrator's database (app.oauth.models), written here
directly because this provider runs inside the orchestrator's workers. The secret
is kept in the department's SecretStore and only its hash in ``oauth_clients``; it
is put in the store before the row is written, so no crash can leave a client whose
secret nobody knows. The secret never appears in outputs, logs or exception text.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import requests
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from app.domain.catalogue import scopes_for
from app.oauth.models import CLIENT_CREDENTIALS, OAuthClient, hash_secret, verify_secret
from app.oauth.server import revoke_client
from app.persistence.database import db
from app.providers.base import (
    CheckResult,
    DepartmentContext,
    ProviderError,
    Stopwatch,
    checked_department_id,
)
from app.providers.http import request

log = logging.getLogger(__name__)

SECRET_NAME = "oauth_client_secret"  # noqa: S105  (the key it is stored under)
CHECK_NAME = "oauth_credentials"
SECRET_BYTES = 32


def client_id_for(department_id: str) -> str:
    """The id becomes part of a client_id sent in HTTP Basic credentials, where
    a ":" would split it: only a valid id gets there."""
    return f"dept-{checked_department_id(department_id)}"


def requested_scopes(config: dict[str, Any]) -> list[str]:
    tools = config.get("enabledTools") or []
    if not isinstance(tools, list):
        raise ProviderError("enabledTools must be a list of tool names")
    try:
        return scopes_for(tools)
    except KeyError as exc:
        raise ProviderError(f"unknown tool {exc.args[0]!r} in enabledTools") from None


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text


class BuiltinOAuthProvider:
    name = "oauth"

    def __init__(
        self,
        *,
        token_url: str,
        introspect_url: str | None = None,
        revoke_url: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.token_url = token_url
        base = token_url.rsplit("/", 1)[0]
        self.introspect_url = introspect_url or f"{base}/introspect"
        self.revoke_url = revoke_url or f"{base}/revoke"
        self._session = session or requests.Session()

    def create(self, context: DepartmentContext) -> dict[str, Any]:
        client_id = client_id_for(context.department_id)
        scopes = requested_scopes(context.config)
        secret = self._secret(context)
        self._upsert_client(context, client_id, scopes, secret)
        log.info("OAuth client %s registered with scopes %s", client_id, scopes)
        return {"clientId": client_id, "scopes": scopes, "audience": context.department_id}

    def delete(self, context: DepartmentContext) -> None:
        client_id = client_id_for(context.department_id)
        # Revoke before forgetting the secret: a crash in between leaves a dead
        # client and a stale secret, which the next delete cleans up.
        revoke_client(client_id)
        context.secrets.delete(SECRET_NAME)
        log.info("OAuth client %s revoked with all its tokens", client_id)

    def check(self, context: DepartmentContext) -> CheckResult:
        """A real client-credentials exchange, then introspection of the token obtained."""
        watch = Stopwatch()
        client_id = client_id_for(context.department_id)
        data: dict[str, Any] = {"clientId": client_id, "tokenUrl": self.token_url}
        secret = context.secrets.get(SECRET_NAME)
        if secret is None:
            return CheckResult(CHECK_NAME, False, watch.elapsed_ms, "no client secret stored", data)
        try:
            detail = self._probe(client_id, secret, context.department_id, data)
        except (ProviderError, ValueError) as exc:  # ValueError: a body that is not JSON
            detail = _redact(f"token exchange failed: {exc}", secret)
            return CheckResult(CHECK_NAME, False, watch.elapsed_ms, detail, data)
        return CheckResult(CHECK_NAME, not detail, watch.elapsed_ms, detail, data)

    # -- create ---------------------------------------------------------------

    @staticmethod
    def _secret(context: DepartmentContext) -> str:
        secret = context.secrets.get(SECRET_NAME)
        if secret is None:
            secret = secrets.token_urlsafe(SECRET_BYTES)
            context.secrets.put(SECRET_NAME, secret)
        return secret

    @staticmethod
    def _upsert_client(
        context: DepartmentContext, client_id: str, scopes: list[str], secret: str
    ) -> None:
        department_id = context.department_id
        with db.transaction() as session:
            # Insert-if-absent first, then lock: racing creates converge on one row.
            session.execute(
                insert(OAuthClient)
                .values(
                    client_id=client_id,
                    department_id=department_id,
                    secret_hash=hash_secret(secret),
                    scopes=scopes,
                    grant_types=[CLIENT_CREDENTIALS],
                    audience=department_id,
                )
                .on_conflict_do_nothing(index_elements=["client_id"])
            )
            client = session.scalars(
                select(OAuthClient).where(OAuthClient.client_id == client_id).with_for_update()
            ).one()
            # Re-read under the row lock: had a racing create stored another secret
            # meanwhile, the hash must follow the store, which is what callers use.
            current = context.secrets.get(SECRET_NAME) or secret
            _reconcile(client, department_id, scopes, current)

    # -- credential rotation --------------------------------------------------

    @staticmethod
    def stage_secret(context: DepartmentContext, secret: str) -> None:
        """Makes ``secret`` valid alongside the current one."""
        with db.transaction() as session:
            client = _locked_client(session, context.department_id)
            if not verify_secret(secret, client.secret_hash):
                client.next_secret_hash = hash_secret(secret)

    @staticmethod
    def commit_secret(context: DepartmentContext, secret: str) -> None:
        """``secret`` becomes the only valid one: the previous secret is revoked."""
        with db.transaction() as session:
            client = _locked_client(session, context.department_id)
            if not verify_secret(secret, client.secret_hash):
                client.secret_hash = hash_secret(secret)
            client.next_secret_hash = None

    # -- check ----------------------------------------------------------------

    def _probe(self, client_id: str, secret: str, department_id: str, data: dict[str, Any]) -> str:
        """Returns "" when healthy, else what is wrong; raises ProviderError on HTTP failure."""
        auth = (client_id, secret)
        issued = request(
            self._session,
            "POST",
            self.token_url,
            auth=auth,
            data={"grant_type": CLIENT_CREDENTIALS},
        ).json()
        access_token = issued.get("access_token")
        if not access_token:
            return "token endpoint answered without an access_token"
        try:
            info = request(
                self._session,
                "POST",
                self.introspect_url,
                auth=auth,
                data={"token": access_token, "token_type_hint": "access_token"},
            ).json()
        finally:
            self._revoke_probe_token(auth, access_token)
        data.update(scopes=(info.get("scope") or "").split(), expiresIn=issued.get("expires_in"))
        if info.get("active") is not True:
            return "freshly issued token introspects as inactive"
        if info.get("aud") != department_id:
            return f"token audience is {info.get('aud')!r}, expected {department_id!r}"
        return ""

    def _revoke_probe_token(self, auth: tuple[str, str], access_token: str) -> None:
        # Health checks run often; their tokens should not stay valid for a full TTL.
        try:
            request(self._session, "POST", self.revoke_url, auth=auth, data={"token": access_token})
        except ProviderError as exc:
            log.warning(
                "could not revoke the health-check token of %s: %s",
                auth[0],
                _redact(str(exc), auth[1]),
            )


def _locked_client(session: Any, department_id: str) -> OAuthClient:
    client = session.scalars(
        select(OAuthClient)
        .where(OAuthClient.client_id == client_id_for(department_id))
        .with_for_update()
    ).one_or_none()
    if client is None:
        raise ProviderError(f"no OAuth client for {department_id}")
    return client


def _reconcile(client: OAuthClient, department_id: str, scopes: list[str], secret: str) -> None:
    """Brings an existing row in line with the request; the SecretStore holds the truth."""
    if client.department_id != department_id:
        raise ProviderError(f"client {client.client_id} belongs to another department")
    if client.revoked_at is not None:
        client.revoked_at = None  # re-provisioned after a delete; old tokens stay revoked
    if not verify_secret(secret, client.secret_hash):
        client.secret_hash = hash_secret(secret)
    if client.scopes != scopes:
        client.scopes = scopes
    if client.audience != department_id:
        client.audience = department_id
    if CLIENT_CREDENTIALS not in client.grant_types:
        client.grant_types = [CLIENT_CREDENTIALS]
