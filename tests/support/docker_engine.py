"""The Docker engine and agent image the `docker` runtime tests use.

``scripts/docker_engine.sh start`` reuses an engine that answers or starts the
project's private one; the agent image is built (or found) by its input hash.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from tests.support.stack import ROOT


@dataclass(frozen=True)
class Engine:
    host: str
    image: str
    started_here: bool


def ensure_engine() -> Engine:
    started = subprocess.run(
        [str(ROOT / "scripts" / "docker_engine.sh"), "start"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    host = subprocess.run(
        [str(ROOT / "scripts" / "docker_engine.sh"), "host"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()  # fmt: skip
    built = subprocess.run(
        [sys.executable, "-m", "app.providers.agent_image"],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
        env={**os.environ, "DOCKER_HOST": host, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    if built.returncode != 0:
        raise RuntimeError(f"agent image build failed:\n{built.stderr[-3000:]}")
    return Engine(host, built.stdout.strip(), "docker engine started" in started.stdout)


def stop_engine_if_ours(engine: Engine) -> None:
    """Stops the engine only if this session started it (and no containers remain)."""
    if engine.started_here:
        subprocess.run(
            [str(ROOT / "scripts" / "docker_engine.sh"), "stop"], check=False, timeout=60
        )
