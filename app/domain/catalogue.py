"""What a department may ask for: the declared catalogue of workflows and tools."""

from __future__ import annotations

WORKFLOWS: tuple[str, ...] = (
    "email",
    "google_drive",
    "google_calendar",
    "database",
    "notifications",
)

# Each tool maps to the OAuth scope the department's client is granted for it.
TOOL_SCOPES: dict[str, str] = {
    "gmail": "tools:gmail",
    "google_drive": "tools:google_drive",
    "google_calendar": "tools:google_calendar",
    "google_sheets": "tools:google_sheets",
    "database_query": "tools:database_query",
    "web_search": "tools:web_search",
    # The original service's names: each keeps a scope of its own, so grants
    # written against it still mean what they said, and acts as its closest tool.
    "email": "tools:email",
    "database": "tools:database",
}
TOOLS: tuple[str, ...] = tuple(TOOL_SCOPES)
# Original tool name -> the current tool whose behaviour it gets in the agent.
ORIGINAL_TOOLS: dict[str, str] = {"email": "gmail", "database": "database_query"}

MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 3650
RETENTION_UNIT_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}

MIN_CPU_MILLICORES = 100
MAX_CPU_MILLICORES = 8000
MIN_MEMORY_MIB = 128
MAX_MEMORY_MIB = 16384
MAX_CUSTOM_CONFIG_BYTES = 16 * 1024


def scopes_for(tools: list[str]) -> list[str]:
    return sorted(TOOL_SCOPES[tool] for tool in tools)


def behaviour_of(tool: str) -> str:
    """The tool whose behaviour ``tool`` gets: itself, unless it is an original name."""
    return ORIGINAL_TOOLS.get(tool, tool)


def retention_days(value: str) -> int:
    return int(value[:-1]) * RETENTION_UNIT_DAYS[value[-1]]


def cpu_millicores(value: str) -> int:
    if value.endswith("m"):
        return int(value[:-1])
    return round(float(value) * 1000)


def memory_mib(value: str) -> int:
    number = int(value[:-2])
    return number * 1024 if value.endswith("Gi") else number
