"""The backends' statements come from the source contract: names are checked before they are
interpolated, and a type a dialect cannot answer with is refused with the types it can."""

import dataclasses

import pyarrow as pa
import pytest

from contract.source import SOURCE
from resources.warehouse.backends import PostgresBackend, SqliteBackend


def test_a_name_that_is_not_a_plain_identifier_is_refused_before_any_statement():
    renamed = dataclasses.replace(SOURCE, table="events; DROP TABLE x")
    with pytest.raises(ValueError, match="not a plain lowercase SQL identifier"):
        SqliteBackend(":memory:", renamed)


def test_every_declared_column_is_in_the_ddl_with_its_nullability():
    for backend in (SqliteBackend(":memory:"), PostgresBackend("postgresql://unused", "s")):
        [table] = [
            s for s in backend.ddl() if f"TABLE IF NOT EXISTS {backend.table(SOURCE.table)}" in s
        ]
        definitions = table[table.index("(") + 1 : table.rindex(")")].split(", ")
        for column in SOURCE.columns:
            declared = f"{column.name} {backend.column_sql(column.type)}"
            assert declared + ("" if column.nullable else " NOT NULL") in definitions, declared
        assert f"PRIMARY KEY ({', '.join(SOURCE.key)})" in table


def test_postgres_refuses_a_type_it_cannot_answer_with():
    backend = PostgresBackend("postgresql://unused", "s")
    with pytest.raises(ValueError, match=r"no column type answering as Arrow int8"):
        backend.column_sql(pa.int8())
