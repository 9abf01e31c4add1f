"""What a department agent is given, whichever runtime runs it.

Gathered and validated before anything is started, so a missing credential
fails the step with a clear message instead of an agent that cannot serve.
Only ``AGENT_*`` variables are produced: the orchestrator's own settings (its
database URL, encryption keys) never reach a tenant's process.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from app.domain.department import is_department_id
from app.providers.agent_config import gather_credentials
from app.providers.agent_process import MANAGED_BY
from app.providers.agent_resources import CpuPlan, MemoryPlan, plan_cpu, plan_memory
from app.providers.base import DepartmentContext, ProviderError

__all__ = ["AgentInputs", "AgentTarget", "checked_id", "gather_inputs"]


@dataclass(frozen=True)
class AgentTarget:
    """Where the agent finds its peers: the tenant database and the token endpoint."""

    database_host: str
    database_port: int
    database_name: str
    oauth_token_url: str


@dataclass(frozen=True)
class AgentInputs:
    environment: dict[str, str]
    secrets: tuple[str, ...]
    memory: MemoryPlan
    cpu: CpuPlan

    def agent_variables(self) -> dict[str, str]:
        return {k: v for k, v in self.environment.items() if k.startswith("AGENT_")}

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def digest(self, *extra: str) -> str:
        """A short fingerprint of everything the agent runs with (secrets included,
        one-way), so a runtime can tell whether a running agent is current."""
        wanted = [self.agent_variables(), self.resource_outputs(), extra]
        payload = json.dumps(wanted, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def resource_outputs(self) -> dict[str, Any]:
        return {**self.memory.as_outputs(), "cpu": self.cpu.as_output()}


def checked_id(department_id: str) -> str:
    """The id becomes a file, user and container name: only the domain's
    department-id rule gets there (every record was validated by it)."""
    if not is_department_id(department_id):
        raise ProviderError(f"invalid department id {department_id!r}")
    return department_id


def gather_inputs(context: DepartmentContext, target: AgentTarget) -> AgentInputs:
    credentials = gather_credentials(context, "start agent")
    role, schema, client_id, password, client_secret = (
        credentials.role,
        credentials.schema,
        credentials.client_id,
        credentials.password,
        credentials.client_secret,
    )
    resources = context.config.get("resources") or {}
    database_url = (
        f"postgresql://{quote(role, safe='')}:{quote(password, safe='')}"
        f"@{target.database_host}:{target.database_port}/{quote(target.database_name)}"
    )
    config = context.config
    environment = {
        "AGENT_MANAGED_BY": MANAGED_BY,
        "AGENT_DEPARTMENT_ID": context.department_id,
        "AGENT_DEPARTMENT_NAME": str(config.get("departmentName") or context.department_id),
        "AGENT_CONFIG_JSON": json.dumps(config, sort_keys=True, default=str),
        "AGENT_DATABASE_URL": database_url,
        "AGENT_DATABASE_SCHEMA": schema,
        "AGENT_OAUTH_TOKEN_URL": target.oauth_token_url,
        "AGENT_OAUTH_CLIENT_ID": client_id,
        "AGENT_OAUTH_CLIENT_SECRET": client_secret,
    }
    return AgentInputs(
        environment=environment,
        # Longest first, so a secret that contains another is masked whole.
        secrets=tuple(
            sorted({password, quote(password, safe=""), client_secret}, key=len, reverse=True)
        ),
        memory=plan_memory(resources.get("memory")),
        cpu=plan_cpu(resources.get("cpu"), context.department_id),
    )
