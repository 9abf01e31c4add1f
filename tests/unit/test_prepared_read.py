"""PreparedRead runs a compiled select() on the driver's cursor, skipping
SQLAlchemy's result processing: it must refuse a statement that needs it."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, TypeDecorator, bindparam, select
from sqlalchemy.dialects.postgresql import psycopg2

from app.domain.services import status_view
from app.persistence.prepared import PreparedRead


class Sealed(TypeDecorator[str]):
    """Stands for any column type that converts what the driver returns."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: str | None, dialect: object) -> str | None:
        return None if value is None else value[::-1]


class Tagged(TypeDecorator[str]):
    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: object) -> str | None:
        return None if value is None else f"tag:{value}"


TABLE = Table(
    "t", MetaData(), Column("id", Integer), Column("secret", Sealed), Column("tag", Tagged)
)


def test_a_column_sqlalchemy_must_convert_is_refused() -> None:
    with pytest.raises(TypeError, match="secret"):
        PreparedRead(select(TABLE.c.id, TABLE.c.secret)).compiled(psycopg2.dialect())


def test_a_parameter_sqlalchemy_must_convert_is_refused() -> None:
    statement = select(TABLE.c.id).where(TABLE.c.tag == bindparam("tag"))
    with pytest.raises(TypeError, match="tag"):
        PreparedRead(statement).compiled(psycopg2.dialect())


def test_the_status_reads_need_no_conversion() -> None:
    for read in (status_view._JOB_WITH_STEPS, status_view._LOG_TAIL):
        assert "%(job_id)s" in read.compiled(psycopg2.dialect()).string
