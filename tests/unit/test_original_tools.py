"""The original service's tool names: own scopes, the closest tool's behaviour."""

from __future__ import annotations

from app.domain import catalogue
from department_agent.app import TOOL_BEHAVIOURS


def test_original_tool_names_have_scopes_of_their_own() -> None:
    assert catalogue.scopes_for(["email", "google_drive", "database"]) == [
        "tools:database",
        "tools:email",
        "tools:google_drive",
    ]
    assert {"gmail", "database_query"} <= set(catalogue.TOOLS)  # the current names stay


def test_each_original_tool_behaves_as_an_existing_tool() -> None:
    for original, behaves_as in catalogue.ORIGINAL_TOOLS.items():
        assert original in catalogue.TOOLS and behaves_as in catalogue.TOOLS
        assert catalogue.behaviour_of(original) == behaves_as
    assert catalogue.behaviour_of("gmail") == "gmail"


def test_the_agent_carries_the_same_mapping_as_the_catalogue() -> None:
    assert TOOL_BEHAVIOURS == catalogue.ORIGINAL_TOOLS
