"""The dependency lock (pip-tools): what make, CI and the image install is fully
pinned with hashes, and agrees with the inputs it was compiled from."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes)."""
    locked: dict[str, tuple[str, int]] = {}
    current = None
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = _normal(match.group(1))
            locked[current] = (match.group(2), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = locked[current]
            locked[current] = (version, hashes + 1)
    return locked


def _inputs(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[_normal(match.group(1).split("[")[0])] = match.group(2)
    return pins


def test_every_locked_package_is_pinned_with_hashes() -> None:
    for lock in ("requirements.txt", "requirements-dev.txt"):
        locked = _locked(ROOT / lock)
        assert len(locked) > 20, lock
        unhashed = [name for name, (_, hashes) in locked.items() if hashes == 0]
        assert not unhashed, f"{lock}: no hashes for {unhashed}"


def test_the_locks_agree_with_their_inputs() -> None:
    runtime, dev = _locked(ROOT / "requirements.txt"), _locked(ROOT / "requirements-dev.txt")
    for name, version in _inputs(ROOT / "requirements.in").items():
        assert runtime[name][0] == version, f"{name}: run `make lock`"
    for name, version in _inputs(ROOT / "requirements-dev.in").items():
        assert dev[name][0] == version, f"{name}: run `make lock`"
    # Development gets exactly the runtime versions, plus its tools.
    assert {n: v for n, (v, _) in runtime.items()} == {
        n: v for n, (v, _) in dev.items() if n in runtime
    }


def test_make_and_the_image_install_the_lock_with_hashes() -> None:
    assert "--require-hashes -r requirements-dev.txt" in (ROOT / "Makefile").read_text()
    assert "--require-hashes -r /tmp/requirements.txt" in (ROOT / "Dockerfile").read_text()
