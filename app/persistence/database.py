"""One engine per process, and transactions as context managers.

Services open transactions with ``db.transaction()``; nothing else commits.
Read-only views that poll (status, lists) use ``db.reading()`` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


@dataclass
class _Pin:
    connection: Connection
    fresh: bool = True  # not yet used by a transaction


_pinned: ContextVar[_Pin | None] = ContextVar("pinned_connection", default=None)


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
        """A session whose work commits on success and rolls back on error: on
        the connection this thread just pinned (``pinned()``), else from the pool."""
        if self._sessions is None:
            raise RuntimeError("database not initialised: call create_app() first")
        pin = _pinned.get()
        if pin is not None and pin.fresh:
            pin.fresh = False
            with self._transaction_on(pin.connection) as session:
                yield session
            return
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def pinned(self) -> Iterator[Connection]:
        """An autocommit connection for a unit of work (a step under its job's
        lock) that also carries this thread's next transaction.

        A step took three connections from the pool: the lock's and one per
        transaction, each checkout a pre-ping round trip. The first transaction
        follows the lock at once, on a connection known to be alive; the later
        ones come after a provider call of any length, when it may not be, so
        they take a pre-pinged connection from the pool as before (as do
        nested transactions and other threads, such as the heartbeat)."""
        with self.autocommit() as connection:
            token = _pinned.set(_Pin(connection))
            try:
                yield connection
            finally:
                _pinned.reset(token)

    @contextmanager
    def _transaction_on(self, connection: Connection) -> Iterator[Session]:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        connection.commit()  # ends SQLAlchemy's record of the autocommit statements
        raw.autocommit = False
        try:
            with Session(bind=connection, expire_on_commit=False) as session, session.begin():
                yield session
        finally:
            if not raw.closed:  # committed or rolled back: no transaction is open
                raw.autocommit = True

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
