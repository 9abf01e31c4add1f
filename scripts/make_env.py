"""Writes .env with strong development secrets, keeping any value already set.

The file is created with mode 0600 from the start (never written first and
chmod'ed after, which leaves a moment where anyone can read it), and an
existing one is tightened to 0600 on every run.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ENV_FILE = Path(__file__).resolve().parent.parent / ".env"
GENERATED = {
    "JWT_SECRET": lambda: secrets.token_urlsafe(48),
    "SECRETS_KEY": lambda: Fernet.generate_key().decode(),
    # Flower's login (user:password), read by scripts/stack.sh and Compose.
    "FLOWER_BASIC_AUTH": lambda: f"admin:{secrets.token_urlsafe(24)}",
    # Standard Webhooks format: give the same value to receivers to verify deliveries.
    "WEBHOOK_SECRET": lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
}


def write_private(path: Path, text: str) -> None:
    """Replaces ``path`` by a file only its owner can read, atomically."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def main(env_file: Path = ENV_FILE) -> None:
    lines = env_file.read_text().splitlines() if env_file.exists() else []
    if env_file.exists():
        env_file.chmod(0o600)
    present = {line.split("=", 1)[0] for line in lines if "=" in line}
    added = [f"{name}={make()}" for name, make in GENERATED.items() if name not in present]
    if added:
        write_private(env_file, "\n".join([*lines, *added]) + "\n")
        print(f"wrote {', '.join(a.split('=')[0] for a in added)} to {env_file.name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ENV_FILE)
