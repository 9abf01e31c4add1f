"""Build the orchestrator's own image here, with no registry: FROM the project's
Debian base (the agent image's, made with debootstrap + docker import).

    python scripts/app_image.py [--tag provisioning-orchestrator/app:local]

Prints the tag. The host's CA bundle is lent to pip for the build stage only.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.providers.agent_image import ensure_base, host_ca_bundle  # noqa: E402

DEFAULT_TAG = "provisioning-orchestrator/app:local"


def build(client: docker.DockerClient, tag: str) -> str:
    base = ensure_base(client, log=lambda line: print(line, file=sys.stderr))
    ca = ROOT / "docker" / "build-ca" / "ca.crt"
    shutil.copyfile(host_ca_bundle(), ca)
    try:
        # The SDK honours .dockerignore when it packs ROOT as the context.
        for chunk in client.api.build(
            path=str(ROOT), tag=tag, buildargs={"BASE": base}, network_mode="host",
            rm=True, forcerm=True, decode=True,
        ):  # fmt: skip
            if "error" in chunk:
                raise SystemExit(f"app image build failed: {chunk['error']}")
            if chunk.get("stream", "").strip():
                print(chunk["stream"].rstrip(), file=sys.stderr)
    finally:
        ca.unlink(missing_ok=True)
    return tag


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default=DEFAULT_TAG)
    args = parser.parse_args()
    print(build(docker.from_env(), args.tag))  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
