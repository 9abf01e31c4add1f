"""The agent's credentials, and how newer ones reach a running agent.

They start as the environment's (AGENT_DATABASE_URL's password,
AGENT_OAUTH_CLIENT_SECRET). During a credential rotation the orchestrator
writes AGENT_CREDENTIALS_FILE (0600, replaced atomically): it is read again
whenever it changes, so new credentials take effect at the next request,
without a restart, a new port or a dropped connection. It may list several
database passwords: each connection tries them in order, so the agent keeps
working across the moment the role's password is switched.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from threading import Lock


def fingerprint(secret: str) -> str:
    """Says which secret is in use without revealing anything usable about it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Credentials:
    database_passwords: tuple[str, ...]
    oauth_client_secret: str

    def describe(self) -> dict[str, object]:
        return {
            "databaseHeld": [fingerprint(p) for p in self.database_passwords],
            "oauth": fingerprint(self.oauth_client_secret),
        }


class CredentialSource:
    def __init__(self, initial: Credentials, path: str | None) -> None:
        self._initial = initial
        self._path = path or None
        self._seen: tuple[int, ...] | None = None
        self._current = initial
        self._lock = Lock()

    def current(self) -> Credentials:
        if self._path is None:
            return self._initial
        try:
            stat = os.stat(self._path)
        except FileNotFoundError:
            return self._initial
        # The change time too: the kernel sets it on every write, whereas a file
        # rewritten in place (docker's put_archive) keeps its inode, and its mtime
        # comes from the archive in whole seconds, the same for two hand-overs.
        stamp = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_size)
        with self._lock:
            if stamp != self._seen:
                self._current = self._read() or self._current
                self._seen = stamp
            return self._current

    def _read(self) -> Credentials | None:
        """None for a file that is not (yet) a valid hand-over: keep what works."""
        try:
            with open(self._path or "", encoding="utf-8") as handle:
                data = json.load(handle)
            passwords = tuple(str(p) for p in data["databasePasswords"] if p)
            secret = str(data["oauthClientSecret"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not passwords or not secret:
            return None
        return Credentials(passwords, secret)
