"""What a department's Railway service should look like: its variables and resource limits.

The variables are the reference agent's whole configuration (``agent_config``), the same
set the local runtime passes, so the same image runs under either runtime. The database
and OAuth addresses must be reachable from Railway's network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from app.providers.agent_config import (
    AgentEndpoints,
    agent_variables,
    gather_credentials,
)
from app.providers.base import DepartmentContext

CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Mi|Gi)$")


@dataclass(frozen=True)
class Desired:
    variables: dict[str, str]
    limits: dict[str, float]  # Railway's serviceInstanceLimitsUpdate fields: vCPUs, memoryGB
    sensitive: tuple[str, ...]  # values to scrub from any error text


def desired_state(
    context: DepartmentContext, endpoints: AgentEndpoints, base: dict[str, str]
) -> Desired:
    credentials = gather_credentials(context, "deploy on Railway")
    variables = {**base, **agent_variables(context, credentials, endpoints)}
    # Operator-supplied base values long enough to be credentials are scrubbed too
    # (short ones like "info" would only garble messages).
    long_base = [v for v in base.values() if isinstance(v, str) and len(v) >= 8]
    sensitive = (variables["AGENT_DATABASE_URL"], *credentials.secrets(), *long_base)
    return Desired(variables, limits_for(context.config.get("resources") or {}), sensitive)


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
