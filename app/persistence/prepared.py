"""The most polled reads, as select() statements compiled once and run on the
driver's cursor.

A status read runs two statements. Through Connection.execute each cost about
0.13 ms of CPU (execution context, result metadata, row processing), a fifth of
the whole request, while psycopg2 itself takes a tenth of that (issue 16's
profile). The statement is still written with select() against the models; only
its execution skips the layers that have nothing to do for it. That holds only
for columns and parameters no SQLAlchemy type has to convert, which is checked
when the statement is first compiled: one that needs conversion is refused
(TypeError), not run wrong.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from sqlalchemy import Connection, Dialect, Select
from sqlalchemy.sql.compiler import SQLCompiler


class PreparedRead:
    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        self._statement = statement
        self._row: Any = namedtuple("Row", statement.selected_columns.keys())  # type: ignore[misc]
        self._compiled: SQLCompiler | None = None

    def rows(self, connection: Connection, **params: Any) -> list[Any]:
        compiled = self.compiled(connection.dialect)
        statement, bound = compiled.string, compiled.construct_params(params)
        cursor = connection.connection.cursor()
        try:
            # The engine's cursor events still see the statement (counting,
            # logging, tracing listeners), as they do on Connection.execute.
            for before in connection.dispatch.before_cursor_execute:
                statement, bound = before(connection, cursor, statement, bound, None, False)
            cursor.execute(statement, bound)
            rows = [self._row._make(row) for row in cursor.fetchall()]
            for after in connection.dispatch.after_cursor_execute:
                after(connection, cursor, statement, bound, None, False)
            return rows
        finally:
            cursor.close()

    def compiled(self, dialect: Dialect) -> SQLCompiler:
        """Compiled on first use, for the engine's own dialect."""
        if self._compiled is not None:
            return self._compiled
        compiled = self._statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        _refuse_conversions(self._statement, compiled, dialect)
        self._compiled = compiled
        return compiled


def _refuse_conversions(
    statement: Select[*tuple[Any, ...]], compiled: SQLCompiler, dialect: Dialect
) -> None:
    for column in statement.selected_columns:
        if column.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
            raise TypeError(f"{column.key} needs SQLAlchemy's conversion: use Connection.execute")
    for name, bind in compiled.binds.items():
        if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
            raise TypeError(f"parameter {name} needs SQLAlchemy's conversion")
