"""The orchestrator's own files about local agents: pidfile records, logs, locks.

They live under ``$RUN_DIR/agents`` (0700), which agents themselves cannot
read; an agent only ever holds an already-open descriptor to its log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

LOG_TAIL_BYTES = 2000


class AgentFiles:
    def __init__(self, agents_dir: Path) -> None:
        self.directory = agents_dir

    def ensure(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)

    def pidfile(self, department_id: str) -> Path:
        return self.directory / f"{department_id}.pid"

    def logfile(self, department_id: str) -> Path:
        return self.directory / f"{department_id}.log"

    @contextlib.contextmanager
    def locked(self, department_id: str) -> Iterator[None]:
        """Serialises create/delete of one department across worker processes."""
        self.ensure()
        fd = os.open(self.directory / f"{department_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read_record(self, department_id: str) -> dict[str, Any]:
        """The pidfile's record; a bare pid is accepted, garbage counts as absent."""
        try:
            text = self.pidfile(department_id).read_text()
        except OSError:
            return {}
        if text.strip().isdigit():
            return {"pid": int(text)}
        try:
            record = json.loads(text)
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def write_record(self, department_id: str, record: Mapping[str, Any]) -> None:
        """Write-then-rename, so readers see the old record or the new one, never half."""
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{department_id}.")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(record, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.pidfile(department_id))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def remove(self, department_id: str) -> None:
        self.pidfile(department_id).unlink(missing_ok=True)
        self.logfile(department_id).unlink(missing_ok=True)

    def log_tail(self, department_id: str, offset: int, redact: Callable[[str], str]) -> str:
        try:
            with self.logfile(department_id).open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                start = max(offset, size - LOG_TAIL_BYTES)
                handle.seek(start)
                text = handle.read().decode(errors="replace")
        except OSError as exc:
            return f"(log unreadable: {exc})"
        if start > offset:  # cut mid-line: drop the fragment
            text = text.partition("\n")[2]
        return redact(text)
