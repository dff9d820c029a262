"""The warehouse backends on the second schema (page views, no date column): every statement
comes from its contract, a day is the half-open range on its timestamp, and SQLite and
PostgreSQL hold and return the same rows."""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from resources.warehouse.backends import (
    PostgresBackend,
    SqliteBackend,
    WarehouseBackend,
    create_tables,
    day_range,
    normalize_events,
    read_day_raw,
    read_watermark,
    replace_day,
    set_watermark,
)
from tests.adapt.page_views import PAGE_VIEWS, generate_page_views, seed_page_views
from tests.support.environment import POSTGRES_DSN, postgres_unavailable_reason

DAY = dt.date(2026, 11, 5)
NEXT = DAY + dt.timedelta(days=1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request, tmp_path) -> Iterator[WarehouseBackend]:
    if request.param == "sqlite":
        yield SqliteBackend(str(tmp_path / "warehouse.sqlite"), PAGE_VIEWS)
        return
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    backend = PostgresBackend(POSTGRES_DSN, f"t_{uuid.uuid4().hex[:12]}", PAGE_VIEWS)
    try:
        yield backend
    finally:
        with backend.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {backend.schema} CASCADE")
            connection.commit()


def _at(rows: pa.Table, moments: list[dt.datetime], prefix: str) -> pa.Table:
    """The first rows moved to `moments`, under fresh keys."""
    head = rows.slice(0, len(moments))
    head = head.set_column(
        head.schema.get_field_index("session_id"),
        PAGE_VIEWS.schema.field("session_id"),
        pa.array([f"{prefix}-{i}" for i in range(len(moments))]),
    )
    return head.set_column(
        head.schema.get_field_index("viewed_at"),
        PAGE_VIEWS.schema.field("viewed_at"),
        pa.array(moments, PAGE_VIEWS.column("viewed_at").type),
    )


def _read(backend: WarehouseBackend, day: dt.date) -> pa.Table:
    return normalize_events(read_day_raw(backend, day), PAGE_VIEWS)


def test_a_day_is_the_half_open_range_on_the_timestamp(backend):
    create_tables(backend)
    start, end = day_range(DAY)
    last_micro = end - dt.timedelta(microseconds=1)
    today = pa.concat_tables(
        [
            generate_page_views(DAY, 300),
            _at(generate_page_views(DAY, 300), [start, last_micro], "edge"),
        ]
    )
    tomorrow = pa.concat_tables(
        [generate_page_views(NEXT, 300), _at(generate_page_views(NEXT, 300), [end], "midnight")]
    )
    replace_day(backend, DAY, today)
    replace_day(backend, NEXT, tomorrow)

    assert _read(backend, DAY).equals(normalize_events(today, PAGE_VIEWS))
    assert _read(backend, NEXT).equals(normalize_events(tomorrow, PAGE_VIEWS))
    # The row at midnight belongs to the day it starts, not the one it ends.
    assert "midnight-0" in _read(backend, NEXT).column("session_id").to_pylist()
    assert "midnight-0" not in _read(backend, DAY).column("session_id").to_pylist()
    assert read_day_raw(backend, DAY - dt.timedelta(days=1)).num_rows == 0


def test_replace_day_replaces_that_day_only_and_is_idempotent(backend):
    seed_page_views(backend, DAY - dt.timedelta(days=1), NEXT, visits=300)
    neighbours = {d: _read(backend, d) for d in (DAY - dt.timedelta(days=1), NEXT)}
    fewer = generate_page_views(DAY, 300).slice(0, 100)
    replace_day(backend, DAY, fewer)
    replace_day(backend, DAY, fewer)
    assert _read(backend, DAY).equals(normalize_events(fewer, PAGE_VIEWS))
    for day, rows in neighbours.items():
        assert _read(backend, day).equals(rows), day


def test_the_composite_key_is_enforced_and_a_failed_replace_changes_nothing(backend):
    seed_page_views(backend, DAY, DAY, visits=300)
    before = _read(backend, DAY)
    twice = pa.concat_tables([before, before.slice(0, 1)])
    with pytest.raises(Exception, match=r"(?i)unique|constraint|duplicate"):
        replace_day(backend, DAY, twice)
    assert _read(backend, DAY).equals(before)


def test_raw_reads_answer_in_the_backend_schema_built_from_the_contract(backend):
    seed_page_views(backend, DAY, DAY, visits=300)
    raw = read_day_raw(backend, DAY)
    assert [(f.name, f.type) for f in raw.schema] == [
        (f.name, f.type) for f in backend.raw_schema()
    ]
    assert raw.schema.names == PAGE_VIEWS.schema.names
    assert _read(backend, DAY).schema == PAGE_VIEWS.schema
    statements = " ".join(backend.ddl())
    assert f"PRIMARY KEY ({', '.join(PAGE_VIEWS.key)})" in statements
    assert f"ON {backend.table(PAGE_VIEWS.table)} ({PAGE_VIEWS.time_column})" in statements
    assert backend.table(PAGE_VIEWS.watermarks_table) in statements


def test_the_watermark_lives_in_the_contracts_table_under_its_source(backend):
    seed_page_views(backend, DAY, DAY, visits=300)
    assert read_watermark(backend) == day_range(DAY)[1]
    moment = dt.datetime(2026, 11, 6, 18, tzinfo=dt.UTC)
    set_watermark(backend, moment)
    assert read_watermark(backend) == moment
    with backend.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT source_table FROM {backend.table(PAGE_VIEWS.watermarks_table)}")
        assert cursor.fetchall() == [(PAGE_VIEWS.table,)]


@pytest.mark.postgres
def test_postgres_and_sqlite_return_identical_tables(tmp_path):
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    sqlite = SqliteBackend(str(tmp_path / "warehouse.sqlite"), PAGE_VIEWS)
    postgres = PostgresBackend(POSTGRES_DSN, f"t_{uuid.uuid4().hex[:12]}", PAGE_VIEWS)
    try:
        for backend in (sqlite, postgres):
            seed_page_views(backend, DAY, NEXT, visits=300)
        for day in (DAY, NEXT):
            from_postgres = _read(postgres, day)
            assert from_postgres.num_rows > 0
            assert from_postgres.equals(_read(sqlite, day))
            hours = pc.hour(from_postgres.column(PAGE_VIEWS.time_column)).to_pylist()
            assert set(hours) == set(range(24))
        assert read_watermark(postgres) == read_watermark(sqlite)
    finally:
        with postgres.connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {postgres.schema} CASCADE")
            connection.commit()


def test_the_sqlite_table_has_no_date_column_and_stores_times_as_integers(tmp_path):
    path = tmp_path / "warehouse.sqlite"
    seed_page_views(SqliteBackend(str(path), PAGE_VIEWS), DAY, DAY, visits=300)
    with sqlite3.connect(path) as connection:
        columns = connection.execute(f"PRAGMA table_info({PAGE_VIEWS.table})").fetchall()
    declared = {name: kind for _, name, kind, *_ in columns}
    assert list(declared) == PAGE_VIEWS.schema.names
    assert declared[PAGE_VIEWS.time_column] == "INTEGER"
    assert not any(kind == "DATE" for kind in declared.values())
