"""Writes .env with strong development secrets, keeping any value already set."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

ENV_FILE = Path(__file__).resolve().parent.parent / ".env"
GENERATED = {
    "JWT_SECRET": lambda: secrets.token_urlsafe(48),
    "SECRETS_KEY": lambda: Fernet.generate_key().decode(),
    # Standard Webhooks format: give the same value to receivers to verify deliveries.
    "WEBHOOK_SECRET": lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
}


def main() -> None:
    lines = ENV_FILE.read_text().splitlines() if ENV_FILE.exists() else []
    present = {line.split("=", 1)[0] for line in lines if "=" in line}
    added = [f"{name}={make()}" for name, make in GENERATED.items() if name not in present]
    if added:
        ENV_FILE.write_text("\n".join([*lines, *added]) + "\n")
        ENV_FILE.chmod(0o600)
        print(f"wrote {', '.join(a.split('=')[0] for a in added)} to {ENV_FILE.name}")


if __name__ == "__main__":
    main()
