"""One engine per process, and transactions as context managers.

Services open transactions with ``db.transaction()``; nothing else commits.
Read-only views that poll (status, lists) use ``db.reading()`` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine
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

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A pooled connection whose statements each stand alone: no BEGIN, no COMMIT.

        It flips psycopg2's own ``autocommit`` flag, a client-side switch, and
        clears it before the connection goes back to the pool. SQLAlchemy's
        ``isolation_level="AUTOCOMMIT"`` option sends ``SET
        default_transaction_isolation`` on the way in and on the way out: the
        two round trips this saves."""
        with self.engine.connect() as pooled:
            raw = pooled.connection.dbapi_connection
            assert raw is not None
            raw.autocommit = True
            try:
                yield pooled
            finally:
                if not raw.closed:  # an invalidated connection is not pooled again
                    raw.autocommit = False

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only, each statement on its own (autocommit).

        Under READ COMMITTED every statement takes its own snapshot anyway, so a
        transaction around a few SELECTs adds no consistency, only a BEGIN and a
        COMMIT round trip: two of the five a status read used to cost."""
        with self.autocommit() as connection, Session(bind=connection) as session:
            yield session

    def dispose(self) -> None:
        """Drops pooled connections; a forked worker must not share its parent's sockets."""
        if self._engine is not None:
            self._engine.dispose(close=False)


db = Database()
