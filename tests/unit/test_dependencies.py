"""Pinned dependencies stay above the releases that fixed known vulnerabilities."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# package -> the first release without a known vulnerability that affects us
MINIMUM = {
    "Authlib": (1, 6, 9),  # CVE-2025-61920 (fixed in 1.6.5) and CVE-2026-27962 (1.6.9)
}


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, pinned = line.split("==", 1)
            # The lock's lines end in " \\" before their hashes.
            pins[name.split("[", 1)[0].strip().lower()] = pinned.split()[0]
    return pins


@pytest.mark.parametrize("package", sorted(MINIMUM))
def test_pinned_and_installed_releases_include_the_fixes(package: str) -> None:
    assert _release(_pins()[package.lower()]) >= MINIMUM[package]
    assert _release(version(package)) >= MINIMUM[package]
