"""Pinned dependencies stay above the releases that fixed known vulnerabilities."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# package -> the first release without a known vulnerability that affects us
MINIMUM = {
    "Authlib": (1, 6, 9),  # CVE-2025-61920 (fixed in 1.6.5) and CVE-2026-27962 (1.6.9)
    # The agents' server, reachable through the gateway: CVE-2024-49768 (request
    # pipelining race) and CVE-2024-49769 (sockets left open), both fixed in 3.0.1.
    "waitress": (3, 0, 1),
}


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


def _pins(path: Path = ROOT / "requirements.txt") -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, pinned = line.split("==", 1)
            # The lock's lines end in " \\" before their hashes.
            pins[name.split("[", 1)[0].strip().lower()] = pinned.split()[0]
    return pins


@pytest.mark.parametrize("package", sorted(MINIMUM))
def test_pinned_and_installed_releases_include_the_fixes(package: str) -> None:
    assert _release(_pins()[package.lower()]) >= MINIMUM[package]
    assert _release(version(package)) >= MINIMUM[package]


def test_the_agent_image_pins_what_the_local_agents_run() -> None:
    """Local agents run from the orchestrator's venv, container agents from the
    image: the same releases, so both runtimes serve the same agent."""
    agent = _pins(ROOT / "docker" / "agent" / "requirements.txt")
    assert agent, "docker/agent/requirements.txt pins nothing"
    assert agent.items() <= _pins().items()
