"""Create n8n's owner account and a public-API key without the UI; idempotent.

Called by ``scripts/n8n.sh setup``. The owner's password is generated once
and kept, 0600, in ``~/.cache/provisioning-orchestrator/n8n-owner-password``
(shared by every checkout that drives this n8n), unless N8N_OWNER_PASSWORD is
set. An owner still on the old fixed development password is moved to the
generated one, so that password no longer opens this n8n.

The key is written to --key-file with mode 600 and never printed. n8n shows a
key's raw value only once, at creation, so "reuse" means: keep the key file if
the key still works, otherwise replace our labelled keys with a new one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import sys
import uuid
from pathlib import Path

import requests

DEFAULT_EMAIL = "owner@provisioning.example.com"
# The fixed password earlier versions set; only ever used to replace it.
LEGACY_PASSWORD = "Provisioning-Owner-2024"  # noqa: S105 - known, being retired
PASSWORD_FILE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "provisioning-orchestrator"
    / "n8n-owner-password"
)
KEY_LABEL = "provisioning-orchestrator"
# Requested explicitly for licensed instances that enforce key scopes; without
# that license n8n ignores scopes and applies the owner's role.
KEY_SCOPES = [
    "workflow:create",
    "workflow:read",
    "workflow:update",
    "workflow:delete",
    "workflow:list",
    "workflow:activate",
    "workflow:deactivate",
    "workflowTags:update",
    "workflowTags:list",
    "tag:create",
    "tag:read",
    "tag:list",
    "tag:delete",
]
TIMEOUT = 15


class SetupError(Exception):
    pass


def key_still_works(base_url: str, key_file: Path) -> bool:
    if not key_file.is_file():
        return False
    key = key_file.read_text().strip()
    response = requests.get(
        f"{base_url}/api/v1/workflows",
        params={"limit": 1},
        headers={"X-N8N-API-KEY": key},
        timeout=TIMEOUT,
    )
    return response.status_code == 200


def owner_password() -> str:
    """N8N_OWNER_PASSWORD, else the generated one (made on first use, 0600)."""
    if os.environ.get("N8N_OWNER_PASSWORD"):
        return os.environ["N8N_OWNER_PASSWORD"]
    if not PASSWORD_FILE.exists():
        # n8n wants 8-64 characters with a digit and an uppercase letter.
        write_secret(PASSWORD_FILE, f"Po9-{secrets.token_urlsafe(30)}")
    return PASSWORD_FILE.read_text().strip()


def retire_legacy_password(base_url: str, email: str, password: str) -> None:
    """If the owner still has the old fixed password, change it to ``password``."""
    session = requests.Session()
    session.headers["browser-id"] = str(uuid.uuid4())
    body = {"emailOrLdapLoginId": email, "password": LEGACY_PASSWORD}
    if session.post(f"{base_url}/rest/login", json=body, timeout=TIMEOUT).status_code != 200:
        return
    change = {"currentPassword": LEGACY_PASSWORD, "newPassword": password}
    response = session.patch(f"{base_url}/rest/me/password", json=change, timeout=TIMEOUT)
    if response.status_code != 200:
        raise SetupError(f"replacing the legacy owner password failed ({response.status_code})")
    print("n8n: the owner's fixed development password was replaced by a generated one")


def owner_session(base_url: str, email: str, password: str) -> requests.Session:
    """Return a session logged in as the owner, creating the owner on first run."""
    session = requests.Session()
    # n8n ties its auth cookie to a browser id; any stable value per session works.
    session.headers["browser-id"] = str(uuid.uuid4())
    settings = session.get(f"{base_url}/rest/settings", timeout=TIMEOUT)
    settings.raise_for_status()
    if settings.json()["data"]["userManagement"]["showSetupOnFirstLoad"]:
        body = {
            "email": email,
            "firstName": "Provisioning",
            "lastName": "Owner",
            "password": password,
        }
        response = session.post(f"{base_url}/rest/owner/setup", json=body, timeout=TIMEOUT)
        action = "owner setup"
    else:
        body = {"emailOrLdapLoginId": email, "password": password}
        response = session.post(f"{base_url}/rest/login", json=body, timeout=TIMEOUT)
        action = "login"
    if response.status_code != 200:
        raise SetupError(
            f"{action} as {email} failed ({response.status_code}: {response.text[:200]}); "
            "the owner may have other credentials: set N8N_OWNER_EMAIL / N8N_OWNER_PASSWORD"
        )
    print(f"n8n: {action} as {email} ok")
    return session


def key_label(key_file: Path) -> str:
    """One label per key file: several checkouts share one n8n, and replacing
    one checkout's key must not revoke the key another checkout is using."""
    digest = hashlib.sha256(str(key_file.resolve()).encode()).hexdigest()[:12]
    return f"{KEY_LABEL}:{digest}"


def replace_api_key(session: requests.Session, base_url: str, label: str) -> str:
    """Delete this key file's earlier keys (their raw values are unrecoverable)
    and create one."""
    listing = session.get(f"{base_url}/rest/api-keys", timeout=TIMEOUT)
    listing.raise_for_status()
    for old in listing.json()["data"]:
        if old.get("label") in (label, KEY_LABEL):  # KEY_LABEL: keys made before labels
            session.delete(f"{base_url}/rest/api-keys/{old['id']}", timeout=TIMEOUT)
    body = {"label": label, "expiresAt": None, "scopes": KEY_SCOPES}
    created = session.post(f"{base_url}/rest/api-keys", json=body, timeout=TIMEOUT)
    if created.status_code != 200:
        raise SetupError(f"creating API key failed ({created.status_code}: {created.text[:200]})")
    return created.json()["data"]["rawApiKey"]


def write_secret(path: Path, value: str) -> None:
    """Write via a 0600 temp file and rename, so the key is never world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    tmp.replace(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--key-file", required=True, type=Path)
    args = parser.parse_args()
    base_url = args.base_url.rstrip("/")
    email = os.environ.get("N8N_OWNER_EMAIL", DEFAULT_EMAIL)
    try:
        password = owner_password()
        retire_legacy_password(base_url, email, password)
        if key_still_works(base_url, args.key_file):
            print(f"n8n: existing API key in {args.key_file} still works; kept")
            return 0
        session = owner_session(base_url, email, password)
        write_secret(args.key_file, replace_api_key(session, base_url, key_label(args.key_file)))
    except (SetupError, requests.RequestException) as exc:
        print(f"n8n setup: {exc}", file=sys.stderr)
        return 1
    print(f"n8n: new API key written to {args.key_file} (mode 600)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
