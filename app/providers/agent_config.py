"""The reference agent's configuration, the same under every container runtime.

The agent is configured by ``AGENT_*`` variables only (``department_agent/app.py``); both
runtimes gather the same inputs from earlier steps and render the same variables, so one
image runs under either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from app.providers.base import DepartmentContext, ProviderError


@dataclass(frozen=True)
class AgentEndpoints:
    """Where the agent reaches its tenant database and the OAuth server from."""

    database_host: str
    database_port: int
    database_name: str
    oauth_token_url: str


@dataclass(frozen=True)
class AgentCredentials:
    role: str
    schema: str
    client_id: str
    password: str
    client_secret: str

    def database_url(self, endpoints: AgentEndpoints) -> str:
        return (
            f"postgresql://{quote(self.role, safe='')}:{quote(self.password, safe='')}"
            f"@{endpoints.database_host}:{endpoints.database_port}"
            f"/{quote(endpoints.database_name)}"
        )

    def secrets(self) -> tuple[str, ...]:
        """Longest first, so a secret that contains another is masked whole."""
        values = {self.password, quote(self.password, safe=""), self.client_secret}
        return tuple(sorted(values, key=len, reverse=True))


def gather_credentials(context: DepartmentContext, doing: str) -> AgentCredentials:
    """What the earlier steps created for the agent; all of it, or a permanent error."""
    database = context.resources.get("create_database") or {}
    oauth = context.resources.get("create_oauth") or {}
    required = {
        'resources["create_database"]["role"]': database.get("role"),
        'resources["create_database"]["schema"]': database.get("schema"),
        'resources["create_oauth"]["clientId"]': oauth.get("clientId"),
        'secret "database_password"': context.secrets.get("database_password"),
        'secret "oauth_client_secret"': context.secrets.get("oauth_client_secret"),
    }
    missing = [name for name, value in required.items() if not value]
    if missing:
        raise ProviderError(
            f"cannot {doing} for {context.department_id}: missing {', '.join(missing)}"
        )
    return AgentCredentials(*(str(v) for v in required.values()))


def agent_variables(
    context: DepartmentContext, credentials: AgentCredentials, endpoints: AgentEndpoints
) -> dict[str, str]:
    config = context.config
    return {
        "AGENT_DEPARTMENT_ID": context.department_id,
        "AGENT_DEPARTMENT_NAME": str(config.get("departmentName") or context.department_id),
        "AGENT_CONFIG_JSON": json.dumps(config, sort_keys=True, default=str),
        "AGENT_DATABASE_URL": credentials.database_url(endpoints),
        "AGENT_DATABASE_SCHEMA": credentials.schema,
        "AGENT_OAUTH_TOKEN_URL": endpoints.oauth_token_url,
        "AGENT_OAUTH_CLIENT_ID": credentials.client_id,
        "AGENT_OAUTH_CLIENT_SECRET": credentials.client_secret,
    }
