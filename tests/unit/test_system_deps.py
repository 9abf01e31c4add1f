"""scripts/system_deps.sh: `make test` / `make demo` install what is missing.

apt-get is replaced by a recorder on PATH (the real one would change this
machine); the script's own logic (what counts as missing, per profile) runs.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "system_deps.sh"


def _run(
    tmp_path: Path, profile: str, present: list[str], extra_env: dict[str, str] | None = None
) -> tuple[int, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "apt-args"
    fake = bin_dir / "apt-get"
    fake.write_text(f'#!/bin/bash\necho "$@" >> {record}\n')
    fake.chmod(0o755)
    for name in ["id", "basename", "dirname"]:
        (bin_dir / name).symlink_to(f"/usr/bin/{name}")
    for name in present:
        tool = bin_dir / name
        tool.write_text("#!/bin/bash\n")
        tool.chmod(0o755)
    env = {"PATH": str(bin_dir), "CHROMIUM_BIN": str(tmp_path / "no-chromium")}
    if "chromium" in present:
        env["CHROMIUM_BIN"] = str(bin_dir / "chromium")
    env.update(extra_env or {})
    proc = subprocess.run(
        ["/bin/bash", str(SCRIPT), profile],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.returncode, record.read_text() if record.exists() else ""


ALL_TOOLS = ["pg_ctlcluster", "redis-server", "caddy", "npm", "iptables", "dockerd", "debootstrap"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the script installs as root")
def test_test_profile_installs_chromium_and_what_else_is_missing(tmp_path: Path) -> None:
    rc, apt = _run(tmp_path, "test", ["pg_ctlcluster", "redis-server", "npm", "iptables"])
    assert rc == 0
    assert "install" in apt
    installed = apt.split()
    assert {"caddy", "chromium", "chromium-driver"} <= set(installed)
    assert "postgresql" not in installed and "npm" not in installed


@pytest.mark.skipif(os.geteuid() != 0, reason="the script installs as root")
def test_demo_profile_needs_no_browser(tmp_path: Path) -> None:
    rc, apt = _run(tmp_path, "demo", ["pg_ctlcluster", "caddy", "npm", "iptables"])
    assert rc == 0
    assert "redis-server" in apt.split()
    assert "chromium" not in apt


def test_nothing_missing_runs_no_apt(tmp_path: Path) -> None:
    rc, apt = _run(tmp_path, "test", [*ALL_TOOLS, "chromium", "docker-compose"])
    assert rc == 0
    assert apt == ""


def test_ci_needs_nothing_make_test_does_not_install() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "apt-get" not in ci
    assert "make test" in ci


@pytest.mark.skipif(os.geteuid() != 0, reason="the script installs as root")
def test_an_installed_engine_is_kept_and_gets_debootstrap_for_the_agent_image(
    tmp_path: Path,
) -> None:
    present = [t for t in ALL_TOOLS if t != "debootstrap"]
    rc, apt = _run(tmp_path, "demo", present)
    assert rc == 0
    assert apt.split()[-1:] == ["debootstrap"]
    assert "docker.io" not in apt


@pytest.mark.skipif(os.geteuid() != 0, reason="the script installs as root")
def test_a_machine_without_an_engine_gets_debians(tmp_path: Path) -> None:
    """The landing CI's machine had no docker.io until docker-compose pulled it
    in, after the check for debootstrap: the image build then failed."""
    present = [t for t in ALL_TOOLS if t not in ("dockerd", "debootstrap")]
    rc, apt = _run(tmp_path, "test", [*present, "chromium"])
    assert rc == 0
    assert {"docker.io", "debootstrap", "docker-compose"} <= set(apt.split())


def test_the_local_runtime_needs_no_engine(tmp_path: Path) -> None:
    present = [t for t in ALL_TOOLS if t not in ("dockerd", "debootstrap")]
    rc, apt = _run(tmp_path, "demo", present, {"CONTAINER_RUNTIME": "local"})
    assert rc == 0
    assert apt == ""
    (tmp_path / "t").mkdir()
    rc, apt = _run(
        tmp_path / "t", "test", [*present, "chromium", "docker-compose"],
        {"TEST_CONTAINER_RUNTIME": "local"},
    )  # fmt: skip
    assert rc == 0
    assert apt == ""
