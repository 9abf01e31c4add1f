"""Handing credentials to a running local agent: a 0600 JSON file it re-reads
when it changes (see department_agent/credentials.py), replaced atomically so
the agent sees the old hand-over or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from app.providers.agent_users import AgentIdentity

CREDENTIALS_VARIABLE = "AGENT_CREDENTIALS_FILE"


def credentials_file(home: Path) -> Path:
    """In the agent's private home: only the agent's own OS user can read it."""
    return home / "credentials.json"


def agent_settings(environ: dict[str, str]) -> dict[str, str]:
    """A running agent's AGENT_* settings, minus where its hand-over file lives
    (not something it runs with: a rotation must not look like a new config)."""
    return {
        k: v for k, v in environ.items() if k.startswith("AGENT_") and k != CREDENTIALS_VARIABLE
    }


def write_credentials(
    identity: AgentIdentity, database_passwords: Sequence[str], oauth_secret: str
) -> None:
    """In the agent's private home, owned by the agent's OS user, 0600."""
    path = credentials_file(identity.home)
    _write(path, database_passwords, oauth_secret)
    if identity.isolated:
        os.chown(path, identity.uid, identity.gid)


def _write(path: Path, database_passwords: Sequence[str], oauth_secret: str) -> None:
    payload = {"databasePasswords": list(database_passwords), "oauthClientSecret": oauth_secret}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:  # mkstemp creates it 0600
            json.dump(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
