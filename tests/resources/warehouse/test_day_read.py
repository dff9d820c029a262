"""A day read in record batches: bounded batches from Postgres and pages of rowids from SQLite,
normalised batch by batch into a landing file holding the whole-table path's rows, and schema
drift seen in any batch."""

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from contract.source import CLICK_STREAM
from resources.warehouse.backends import (
    PostgresBackend,
    SqliteBackend,
    create_tables,
    normalize_events,
    read_day_raw,
    replace_day,
    sort_by_key,
    stream_day_raw,
)
from resources.warehouse.day_read import collect_day, collect_table
from resources.warehouse.resource import Warehouse
from scripts.synthetic_events import generate_events, seed_warehouse
from tests.support.example import example_sqlite

DAY = dt.date(2026, 11, 3)


def _batches(table: pa.Table, rows: int) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=rows))


def test_batch_by_batch_lands_the_whole_table_paths_rows(seeded_sqlite, tmp_path):
    backend = example_sqlite(str(seeded_sqlite))
    raw = read_day_raw(backend, DAY)
    day = collect_day(
        _batches(raw, 97), backend.raw_schema(), tmp_path / "day.parquet", CLICK_STREAM
    )
    assert day.rows == raw.num_rows
    assert day.landed == tmp_path / "day.parquet"
    # Landed with every column nullable (a null in a required column is the gates' to judge).
    landed = pq.read_table(day.landed).cast(CLICK_STREAM.schema)
    # In arrival order, one row group per batch: only the key order is the sort's to add.
    assert pq.ParquetFile(day.landed).num_row_groups == -(-raw.num_rows // 97)
    assert sort_by_key(landed, CLICK_STREAM).equals(normalize_events(raw, CLICK_STREAM))
    assert day.valued == frozenset(raw.schema.names) - {
        name for name in raw.schema.names if raw.column(name).null_count == raw.num_rows
    }


def test_a_retyped_column_valued_only_in_a_later_batch_is_drift(seeded_sqlite, tmp_path):
    backend = example_sqlite(str(seeded_sqlite))
    raw = read_day_raw(backend, DAY)
    expected = backend.raw_schema()
    numeric = next(f.name for f in expected if pa.types.is_floating(f.type))
    index = raw.schema.get_field_index(numeric)
    # The column as text, null in the first 100 rows and valued after them.
    values = [None] * 100 + ["1.5"] * (raw.num_rows - 100)
    drifted = raw.set_column(index, pa.field(numeric, pa.string()), pa.array(values))
    day = collect_day(_batches(drifted, 50), expected, tmp_path / "drifted.parquet", CLICK_STREAM)
    assert day.landed is None and numeric in day.valued and day.rows == raw.num_rows
    # What was landed before the drift showed is gone with it.
    assert not (tmp_path / "drifted.parquet").exists()
    # The same column null the whole day is not judged by its type (SQLite cannot type it).
    untyped = raw.set_column(
        index, pa.field(numeric, pa.string()), pa.nulls(raw.num_rows, pa.string())
    )
    untyped_day = collect_table(untyped, expected, tmp_path / "untyped.parquet", CLICK_STREAM)
    assert untyped_day.landed is not None


def test_a_missing_column_on_an_empty_day_is_drift(seeded_sqlite, tmp_path):
    expected = example_sqlite(str(seeded_sqlite)).raw_schema()
    empty = expected.empty_table().drop_columns([expected.names[-1]])
    day = collect_table(empty, expected, tmp_path / "empty.parquet", CLICK_STREAM)
    assert day.landed is None and day.rows == 0
    assert not (tmp_path / "empty.parquet").exists()


@pytest.mark.postgres
def test_postgres_streams_the_day_in_bounded_batches(postgres_backend, tmp_path):
    seed_warehouse(postgres_backend, DAY, DAY, impressions=2_000)
    small = PostgresBackend(
        postgres_backend.dsn, postgres_backend.schema, CLICK_STREAM, batch_bytes=64 * 1024
    )
    with stream_day_raw(small, DAY) as reader:
        sizes = [batch.num_rows for batch in reader]
    expected = generate_events(DAY, 2_000)
    assert len(sizes) > 1 and sum(sizes) == expected.num_rows
    warehouse = Warehouse(
        backend="postgres",
        postgres_dsn=postgres_backend.dsn,
        postgres_schema=postgres_backend.schema,
        postgres_batch_bytes=64 * 1024,
    )
    day = warehouse.read_day(DAY, tmp_path / "day.parquet", CLICK_STREAM)
    assert day.landed is not None
    assert pq.ParquetFile(day.landed).num_row_groups == len(sizes)
    landed = pq.read_table(day.landed).cast(CLICK_STREAM.schema)
    assert sort_by_key(landed, CLICK_STREAM).equals(expected)


def _nulls_first_sqlite(path, column: str, page_rows: int) -> tuple[SqliteBackend, pa.Table]:
    """A SQLite warehouse holding a day whose rows arrive with `column`'s nulls first, read in
    pages of `page_rows` rowids."""
    backend = SqliteBackend(str(path), CLICK_STREAM, page_rows=page_rows)
    create_tables(backend)
    events = normalize_events(generate_events(DAY, 600), CLICK_STREAM)
    order = pc.sort_indices(events, sort_keys=[(column, "ascending")], null_placement="at_start")
    replace_day(backend, DAY, events.take(order))
    return backend, events


def _null_led_float(events: pa.Table) -> str:
    return next(
        f.name
        for f in CLICK_STREAM.schema
        if pa.types.is_floating(f.type) and 0 < events.column(f.name).null_count < events.num_rows
    )


def test_sqlite_pages_a_day_and_types_each_page_by_its_own_values(tmp_path):
    events = normalize_events(generate_events(DAY, 600), CLICK_STREAM)
    column = _null_led_float(events)
    backend, events = _nulls_first_sqlite(tmp_path / "w.sqlite", column, page_rows=97)
    nulls = events.column(column).null_count
    assert nulls > 97, "the first page must hold no value of the column"
    with stream_day_raw(backend, DAY) as batches:
        pages = list(batches)
    assert len(pages) == -(-events.num_rows // 97) and max(p.num_rows for p in pages) <= 97
    # The driver typed the first page's empty column by guess and a later page's as stored.
    assert pages[0].schema.field(column).type != pages[-1].schema.field(column).type
    with stream_day_raw(backend, DAY) as batches:
        day = collect_day(batches, backend.raw_schema(), tmp_path / "day.parquet", CLICK_STREAM)
    assert day.landed is not None and day.rows == events.num_rows
    assert day.schema.field(column).type == backend.raw_schema().field(column).type
    landed = pq.read_table(day.landed).cast(CLICK_STREAM.schema)
    assert sort_by_key(landed, CLICK_STREAM).equals(events)
    assert normalize_events(read_day_raw(backend, DAY), CLICK_STREAM).equals(events)
    # The same read in one query of 97-row batches fails on the first value: what paging avoids.
    with pytest.raises(Exception, match="Type mismatch"):
        single = SqliteBackend(str(tmp_path / "w.sqlite"), CLICK_STREAM, page_rows=10**9)
        with single.connect() as connection, connection.cursor() as cursor:
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": "97"})
            where, params = single.day_filter(DAY)
            cursor.execute(f"SELECT * FROM {CLICK_STREAM.table} WHERE {where}", params)
            cursor.fetch_arrow_table()


def test_text_in_a_later_sqlite_page_is_drift(tmp_path):
    events = normalize_events(generate_events(DAY, 600), CLICK_STREAM)
    column = _null_led_float(events)
    backend, events = _nulls_first_sqlite(tmp_path / "w.sqlite", column, page_rows=97)
    # SQLite keeps text that does not read as a number as TEXT, even in a REAL column.
    with backend.connect() as connection, connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {CLICK_STREAM.table} SET {column} = 'n/a' "
            f"WHERE rowid = (SELECT max(rowid) FROM {CLICK_STREAM.table})"
        )
        connection.commit()
    with stream_day_raw(backend, DAY) as batches:
        day = collect_day(batches, backend.raw_schema(), tmp_path / "day.parquet", CLICK_STREAM)
    assert day.landed is None and column in day.valued and day.rows == events.num_rows
    # The day's schema names the type that drifted, not the one the earlier pages held.
    assert day.schema.field(column).type == pa.string()
    assert not (tmp_path / "day.parquet").exists()
