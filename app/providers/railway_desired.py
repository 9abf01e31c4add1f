"""What a department's Railway service should look like: its variables and resource limits.

The variables are the reference agent's whole configuration (``department_agent/app.py``),
the same set the local runtime passes, so the same image runs under either runtime. The
database and OAuth addresses must be reachable from Railway's network.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from app.providers.base import DepartmentContext, ProviderError

CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Mi|Gi)$")


@dataclass(frozen=True)
class AgentEndpoints:
    """Where the agent reaches its tenant database and the OAuth server from."""

    database_host: str
    database_port: int
    database_name: str
    oauth_token_url: str


@dataclass(frozen=True)
class Desired:
    variables: dict[str, str]
    limits: dict[str, float]  # Railway's serviceInstanceLimitsUpdate fields: vCPUs, memoryGB
    sensitive: tuple[str, ...]  # values to scrub from any error text


def desired_state(
    context: DepartmentContext, endpoints: AgentEndpoints, base: dict[str, str]
) -> Desired:
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
            f"cannot deploy {context.department_id} on Railway: missing {', '.join(missing)}"
        )
    role, schema, client_id, password, client_secret = (str(v) for v in required.values())
    database_url = (
        f"postgresql://{quote(role, safe='')}:{quote(password, safe='')}"
        f"@{endpoints.database_host}:{endpoints.database_port}/{quote(endpoints.database_name)}"
    )
    config = context.config
    variables = {
        **base,
        "AGENT_DEPARTMENT_ID": context.department_id,
        "AGENT_DEPARTMENT_NAME": str(config.get("departmentName") or context.department_id),
        "AGENT_CONFIG_JSON": json.dumps(config, sort_keys=True, separators=(",", ":"), default=str),
        "AGENT_DATABASE_URL": database_url,
        "AGENT_DATABASE_SCHEMA": schema,
        "AGENT_OAUTH_TOKEN_URL": endpoints.oauth_token_url,
        "AGENT_OAUTH_CLIENT_ID": client_id,
        "AGENT_OAUTH_CLIENT_SECRET": client_secret,
    }
    # Operator-supplied base values long enough to be credentials are scrubbed too
    # (short ones like "info" would only garble messages).
    long_base = [v for v in base.values() if isinstance(v, str) and len(v) >= 8]
    sensitive = (password, quote(password, safe=""), database_url, client_secret, *long_base)
    return Desired(variables, limits_for(config.get("resources") or {}), sensitive)


def limits_for(resources: dict[str, Any]) -> dict[str, float]:
    """``resources.cpu`` ("0.5", "500m") and ``resources.memory`` ("512Mi", "2Gi") as
    Railway's vCPUs and memoryGB; the API validated both before any job existed."""
    limits: dict[str, float] = {}
    cpu = CPU.match(str(resources.get("cpu") or ""))
    if cpu:
        limits["vCPUs"] = float(cpu.group(1)) / (1000 if cpu.group(2) else 1)
    memory = MEMORY.match(str(resources.get("memory") or ""))
    if memory:
        limits["memoryGB"] = float(memory.group(1)) / (1024 if memory.group(2) == "Mi" else 1)
    return limits


def limits_differ(current: Any, wanted: dict[str, float]) -> bool:
    current = current if isinstance(current, dict) else {}
    return any(
        not isinstance(current.get(key), int | float) or abs(current[key] - value) > 1e-9
        for key, value in wanted.items()
    )
