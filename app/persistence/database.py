"""One engine per process, and transactions as context managers.

Services open transactions with ``db.transaction()``; nothing else commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


class Database:
    def __init__(self) -> None:
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    def init(self, url: str) -> None:
        if self._engine is not None and str(self._engine.url) == url:
            return
        self._engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("database not initialised: call create_app() first")
        return self._engine

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on error."""
        if self._sessions is None:
            raise RuntimeError("database not initialised: call create_app() first")
        with self._sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        """Drops pooled connections; a forked worker must not share its parent's sockets."""
        if self._engine is not None:
            self._engine.dispose(close=False)


db = Database()
