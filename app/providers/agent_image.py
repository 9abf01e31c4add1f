"""The department agent's container image, built here from the project's own sources.

No image registry is assumed. The base is a Debian root filesystem made with
``debootstrap`` from the mirror apt already uses and brought in with
``docker import``; ``docker/agent/Dockerfile`` then installs the agent's pinned
PyPI dependencies and its code on top. Both images are tagged with a hash of
their inputs, so an unchanged checkout reuses them, and any change to the
agent's code, requirements, Dockerfile or the base recipe gives a new tag.
The base root filesystem is also kept as a tarball under the cache directory,
so a fresh engine data root imports it in seconds instead of re-bootstrapping.

``python -m app.providers.agent_image [--print-tag]`` builds (or finds) the image.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AGENT_DIR = PROJECT_ROOT / "docker" / "agent"
REPOSITORY = "provisioning-orchestrator/agent"
BASE_REPOSITORY = "provisioning-orchestrator/debian-base"
SUITE = "bookworm"
# python3 is Debian's 3.11; venv brings ensurepip; certificates let pip reach PyPI.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
CACHE_DIR = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "provisioning-orchestrator"
    / "images"
)


def debian_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 or one-line format)."""
    for path in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        match = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", path.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    listing = Path("/etc/apt/sources.list")
    if listing.exists():
        match = re.search(r"^deb\s+(\S+/debian)/?\s+", listing.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    return "http://deb.debian.org/debian"


def _digest(parts: list[bytes]) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big") + part)
    return hasher.hexdigest()[:16]


def base_tag() -> str:
    """The base recipe's hash; the mirror is left out so mirrors are interchangeable."""
    recipe = f"{SUITE} minbase {' '.join(sorted(BASE_PACKAGES))}".encode()
    return f"{BASE_REPOSITORY}:{SUITE}-{_digest([recipe])}"


def agent_sources() -> list[Path]:
    """Every file that goes into the agent image, in a stable order."""
    code = sorted((PROJECT_ROOT / "department_agent").glob("*.py"))
    return [AGENT_DIR / "Dockerfile", AGENT_DIR / "requirements.txt", *code]


def agent_tag() -> str:
    parts = [base_tag().encode()]
    for path in agent_sources():
        parts += [str(path.relative_to(PROJECT_ROOT)).encode(), path.read_bytes()]
    return f"{REPOSITORY}:{_digest(parts)}"


def _has_image(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _bootstrap_tarball(log: Any) -> Path:
    """The base root filesystem as a tarball, made once per recipe."""
    tarball = CACHE_DIR / f"{base_tag().rpartition(':')[2]}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise SystemExit("debootstrap is not installed: apt-get install debootstrap")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="po-rootfs-", dir=CACHE_DIR) as work:
        rootfs = Path(work) / "rootfs"
        command = [
            "debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
            SUITE, str(rootfs), debian_mirror(),
        ]  # fmt: skip
        log(f"bootstrapping Debian {SUITE} from {command[-1]}")
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        # Package lists and caches are not needed at run time and change every build.
        for leftover in ("var/lib/apt/lists", "var/cache/apt/archives"):
            shutil.rmtree(rootfs / leftover, ignore_errors=True)
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
    return tarball


def ensure_base(client: Any, log: Any = print) -> str:
    tag = base_tag()
    if not _has_image(client, tag):
        tarball = _bootstrap_tarball(log)
        log(f"importing {tarball.name} as {tag}")
        repository, _, version = tag.partition(":")
        client.api.import_image_from_file(str(tarball), repository=repository, tag=version)
    return tag


def host_ca_bundle() -> str:
    candidates = (os.environ.get("PIP_CERT"), os.environ.get("REQUESTS_CA_BUNDLE"))
    for candidate in (*candidates, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return candidate
    raise SystemExit("no CA bundle found for pip in the image build (set PIP_CERT)")


def _build_context() -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in agent_sources():
            name = path.name if path.parent == AGENT_DIR else str(path.relative_to(PROJECT_ROOT))
            archive.add(path, arcname=name)
        # pip in the build trusts what the host trusts (e.g. a proxy's CA). Used
        # only during the build, left out of the hash: it changes no behaviour.
        archive.add(host_ca_bundle(), arcname="host-ca.crt")
    buffer.seek(0)
    return buffer


def ensure_agent_image(client: Any, log: Any = print) -> str:
    """The agent image's tag, building whatever is missing (minutes the first time)."""
    tag = agent_tag()
    if _has_image(client, tag):
        return tag
    base = ensure_base(client, log)
    log(f"building {tag}")
    for chunk in client.api.build(
        fileobj=_build_context(),
        custom_context=True,
        tag=tag,
        buildargs={"BASE": base},
        network_mode="host",
        rm=True,
        forcerm=True,
        decode=True,
    ):
        if "error" in chunk:
            raise SystemExit(f"agent image build failed: {chunk['error']}")
        if chunk.get("stream", "").strip():
            log(chunk["stream"].rstrip())
    return tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.providers.agent_image")
    parser.add_argument("--print-tag", action="store_true", help="print the tag; build nothing")
    args = parser.parse_args(argv)
    if args.print_tag:
        print(agent_tag())
        return 0
    import docker

    client = docker.from_env()  # type: ignore[attr-defined]
    tag = ensure_agent_image(client, log=lambda line: print(line, file=sys.stderr))
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
