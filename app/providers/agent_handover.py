"""Handing credentials to a running local agent: a 0600 JSON file it re-reads
when it changes (see department_agent/credentials.py), replaced atomically so
the agent sees the old hand-over or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path


def credentials_file(agents_dir: Path, department_id: str) -> Path:
    return agents_dir / f"{department_id}.credentials.json"


def write_credentials(path: Path, database_passwords: Sequence[str], oauth_secret: str) -> None:
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
