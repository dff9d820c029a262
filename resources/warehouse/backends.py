"""ADBC access to the upstream warehouse: SQLite (embedded default) or PostgreSQL (production).

Every statement is built from the source contract a backend carries (`contract/source.py`):
the table and column names, the DDL from the Arrow types, how a day is selected (a date column,
or a half-open range on the timestamp), the key. Both backends hold the same rows and answer
with the contract's canonical Arrow schema; the differences (placeholders, how dates and
timestamps are stored, schemas, how a day's read is batched) live here only. Dagster-free, so
the seeding script and tests use it directly.
"""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from contract.source import SOURCE, SourceContract

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# ADBC SQLite types an answer from its first batch: a column NULL through it is typed INT64
# and the next batch's doubles are refused. So SQLite reads a day in pages of this many rowids,
# each page its own query answered in one batch and typed by its own values; the collector
# judges a column's type only where it holds values.
SQLITE_PAGE_ROWS = 128 * 1024
# PostgreSQL declares every column's type, so its reads stream in batches of about this size:
# the day never sits in memory as the driver's raw answer.
POSTGRES_BATCH_BYTES = 16 * 2**20
_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _plain_identifier(name: str, what: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(
            f"{what} {name!r} is not a plain lowercase SQL identifier; the warehouse builds its "
            "statements from the source contract's names, so rename it there."
        )
    return name


def _check_contract(contract: SourceContract) -> SourceContract:
    """Every name the statements interpolate is a plain identifier (no quoting, no injection)."""
    _plain_identifier(contract.table, "source table")
    _plain_identifier(contract.watermarks_table, "watermarks table")
    for column in contract.columns:
        _plain_identifier(column.name, f"column of {contract.table}")
    return contract


def day_range(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC day as the half-open range [start, end)."""
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return start, start + dt.timedelta(days=1)


class WarehouseBackend(ABC):
    """One database dialect for one source contract: connecting, storing times, binding."""

    name: str

    def __init__(self, contract: SourceContract = SOURCE):
        self.contract = _check_contract(contract)

    @abstractmethod
    def connect(self) -> Any: ...

    @abstractmethod
    def placeholder(self, position: int) -> str: ...

    @abstractmethod
    def column_sql(self, data_type: pa.DataType) -> str:
        """The column type this dialect stores an Arrow type as."""

    @abstractmethod
    def stored_type(self, data_type: pa.DataType) -> pa.DataType:
        """The Arrow type the driver answers with for a column declared as `data_type`."""

    @abstractmethod
    def watermark_sql(self) -> str: ...

    @abstractmethod
    def time_param(self, moment: dt.datetime) -> Any:
        """A watermark instant as this backend stores it."""

    @abstractmethod
    def time_from_db(self, value: Any) -> dt.datetime: ...

    @abstractmethod
    def value_param(self, data_type: pa.DataType, value: dt.date | dt.datetime) -> Any:
        """A date or timestamp bound against a column of `data_type`."""

    def read_options(self) -> Mapping[str, str]:
        """ADBC statement options set before every read (how the driver batches the day)."""
        return {}

    def day_batches(self, cursor: Any, table: str, where: str, params: tuple) -> DayBatches:
        """The day's rows through `cursor`, as the driver answers them."""
        cursor.execute(f"SELECT * FROM {table} WHERE {where}", params or None)
        return cursor.fetch_record_batch()

    def table(self, name: str) -> str:
        return name

    def ingest_schema(self) -> str | None:
        return None

    def preamble(self) -> list[str]:
        return []

    def ddl(self) -> list[str]:
        """The source table (types, nullability, key), its day index, and the watermarks."""
        contract = self.contract
        columns = [
            f"{c.name} {self.column_sql(c.type)}{'' if c.nullable else ' NOT NULL'}"
            for c in contract.columns
        ]
        selector = contract.date_column or contract.time_column
        table = self.table(contract.table)
        return [
            *self.preamble(),
            f"CREATE TABLE IF NOT EXISTS {table} ("
            + ", ".join([*columns, f"PRIMARY KEY ({', '.join(contract.key)})"])
            + ")",
            f"CREATE INDEX IF NOT EXISTS {contract.table}_{selector} ON {table} ({selector})",
            f"CREATE TABLE IF NOT EXISTS {self.table(contract.watermarks_table)} ("
            f"source_table TEXT PRIMARY KEY, loaded_through {self.watermark_sql()} NOT NULL)",
        ]

    def raw_schema(self) -> pa.Schema:
        """The Arrow schema this backend returns for a healthy source table."""
        return pa.schema(
            pa.field(f.name, self.stored_type(f.type), f.nullable) for f in self.contract.schema
        )

    def events_for_ingest(self, events: pa.Table) -> pa.Table:
        """The contract's table cast to what this backend stores (dates, timestamps)."""
        target = self.raw_schema()
        for field_ in target:
            if events.schema.field(field_.name).type != field_.type:
                index = events.schema.get_field_index(field_.name)
                column = pc.cast(events.column(field_.name), field_.type)
                events = events.set_column(index, field_, column)
        return events

    def bound_value(
        self, data_type: pa.DataType, value: dt.date | dt.datetime, position: int
    ) -> tuple[str, tuple[Any, ...]]:
        """A date or timestamp in a day filter: its SQL and the parameters it binds."""
        return self.placeholder(position), (self.value_param(data_type, value),)

    def day_filter(self, day: dt.date) -> tuple[str, tuple[Any, ...]]:
        """The WHERE clause selecting one UTC day, and its parameters."""
        contract = self.contract
        if contract.date_column is not None:
            column = contract.column(contract.date_column)
            sql, params = self.bound_value(column.type, day, 1)
            return f"{column.name} = {sql}", params
        column = contract.column(contract.time_column)
        start, end = day_range(day)
        start_sql, start_params = self.bound_value(column.type, start, 1)
        end_sql, end_params = self.bound_value(column.type, end, 2)
        return (
            f"{column.name} >= {start_sql} AND {column.name} < {end_sql}",
            start_params + end_params,
        )


class SqliteBackend(WarehouseBackend):
    """Dates stored as ISO TEXT, timestamps as INTEGER counts of their unit since the epoch
    (SQLite has neither type)."""

    name = "sqlite"

    def __init__(
        self, path: str, contract: SourceContract = SOURCE, page_rows: int = SQLITE_PAGE_ROWS
    ):
        super().__init__(contract)
        self.path = path
        self.page_rows = page_rows

    def connect(self) -> Any:
        import adbc_driver_sqlite.dbapi

        return adbc_driver_sqlite.dbapi.connect(self.path)

    def read_options(self) -> Mapping[str, str]:
        # A page is at most page_rows rows: one batch, typed from all of them.
        return {"adbc.sqlite.query.batch_rows": str(self.page_rows)}

    def day_batches(self, cursor: Any, table: str, where: str, params: tuple) -> DayBatches:
        cursor.execute(f"SELECT min(rowid), max(rowid) FROM {table} WHERE {where}", params)
        low, high = cursor.fetchone()
        page = f"SELECT * FROM {table} WHERE {where} AND rowid >= ? AND rowid < ?"
        if low is None:
            # An empty day still answers with the table's columns, for the schema gate.
            cursor.execute(page, (*params, 0, 0))
            return cursor.fetch_record_batch()
        return _SqlitePages(cursor, page, params, range(low, high + 1, self.page_rows))

    def placeholder(self, position: int) -> str:
        return "?"

    def column_sql(self, data_type: pa.DataType) -> str:
        stored = self.stored_type(data_type)
        if pa.types.is_integer(stored):
            return "INTEGER"
        if pa.types.is_floating(stored):
            return "REAL"
        return "TEXT"

    def stored_type(self, data_type: pa.DataType) -> pa.DataType:
        if pa.types.is_date(data_type) or pa.types.is_string(data_type):
            return pa.string()
        if pa.types.is_timestamp(data_type) or pa.types.is_integer(data_type):
            return pa.int64()
        if pa.types.is_boolean(data_type):
            return pa.int64()
        if pa.types.is_floating(data_type):
            return pa.float64()
        raise ValueError(f"SQLite backend cannot store Arrow type {data_type}")

    def watermark_sql(self) -> str:
        return "INTEGER"

    def time_param(self, moment: dt.datetime) -> int:
        return _epoch_units(moment, "us")

    def time_from_db(self, value: Any) -> dt.datetime:
        return dt.datetime.fromtimestamp(0, dt.UTC) + dt.timedelta(microseconds=int(value))

    def value_param(self, data_type: pa.DataType, value: dt.date | dt.datetime) -> Any:
        if pa.types.is_timestamp(data_type):
            return _epoch_units(value, data_type.unit)
        return value.isoformat()


class PostgresBackend(WarehouseBackend):
    """Dates as DATE, timestamps as TIMESTAMPTZ; tables live in `schema` (default `public`)."""

    name = "postgres"
    # Arrow types PostgreSQL stores natively and ADBC answers with unchanged.
    _NATIVE: ClassVar[tuple[tuple[pa.DataType, str], ...]] = (
        (pa.string(), "TEXT"),
        (pa.int64(), "BIGINT"),
        (pa.int32(), "INTEGER"),
        (pa.int16(), "SMALLINT"),
        (pa.float64(), "DOUBLE PRECISION"),
        (pa.float32(), "REAL"),
        (pa.bool_(), "BOOLEAN"),
        (pa.date32(), "DATE"),
    )

    def __init__(
        self,
        dsn: str,
        schema: str = "public",
        contract: SourceContract = SOURCE,
        batch_bytes: int = POSTGRES_BATCH_BYTES,
    ):
        super().__init__(contract)
        self.dsn = dsn
        self.schema = _plain_identifier(schema, "Postgres schema name")
        self.batch_bytes = batch_bytes

    def read_options(self) -> Mapping[str, str]:
        return {"adbc.postgresql.batch_size_hint_bytes": str(self.batch_bytes)}

    def connect(self) -> Any:
        import adbc_driver_postgresql.dbapi

        return adbc_driver_postgresql.dbapi.connect(self.dsn)

    def placeholder(self, position: int) -> str:
        return f"${position}"

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}"

    def ingest_schema(self) -> str | None:
        return self.schema

    def preamble(self) -> list[str]:
        return [f"CREATE SCHEMA IF NOT EXISTS {self.schema}"]

    def column_sql(self, data_type: pa.DataType) -> str:
        if pa.types.is_timestamp(data_type) and data_type.unit == "us":
            return "TIMESTAMPTZ" if data_type.tz is not None else "TIMESTAMP"
        for arrow_type, sql in self._NATIVE:
            if data_type == arrow_type:
                return sql
        raise ValueError(
            f"PostgreSQL backend has no column type answering as Arrow {data_type}; declare "
            "the column in the source contract as one of "
            f"{[str(t) for t, _ in self._NATIVE]} or timestamp[us]."
        )

    def stored_type(self, data_type: pa.DataType) -> pa.DataType:
        self.column_sql(data_type)
        return data_type

    def watermark_sql(self) -> str:
        return "TIMESTAMPTZ"

    def time_param(self, moment: dt.datetime) -> dt.datetime:
        return _require_utc(moment)

    def time_from_db(self, value: Any) -> dt.datetime:
        return _require_utc(value)

    def value_param(self, data_type: pa.DataType, value: dt.date | dt.datetime) -> Any:
        return _require_utc(value) if isinstance(value, dt.datetime) else value

    def bound_value(
        self, data_type: pa.DataType, value: dt.date | dt.datetime, position: int
    ) -> tuple[str, tuple[Any, ...]]:
        """A typed literal, no parameter: the driver answers a statement with bound parameters
        in one batch, which would hold the whole day. The text comes from a date or datetime
        object's ISO form only, never from a caller's string."""
        if isinstance(value, dt.datetime):
            utc = _require_utc(value)
            if data_type.tz is None:
                return f"TIMESTAMP '{utc.replace(tzinfo=None).isoformat()}'", ()
            return f"TIMESTAMPTZ '{utc.isoformat()}'", ()
        if isinstance(value, dt.date):
            return f"DATE '{value.isoformat()}'", ()
        raise TypeError(f"A day filter binds dates and datetimes only, not {value!r}")


class DayBatches(Protocol):
    """A day's record batches and the schema of the first; with SQLite a later batch may type
    a column the first held no value in."""

    schema: pa.Schema

    def __iter__(self) -> Iterator[pa.RecordBatch]: ...


class _SqlitePages:
    """One query per page of rowids, run as the previous page is consumed."""

    def __init__(self, cursor: Any, sql: str, params: tuple, starts: range):
        self._cursor, self._sql, self._params, self._starts = cursor, sql, params, starts
        self._first = self._page(starts[0])
        self.schema = self._first.schema

    def _page(self, start: int) -> pa.RecordBatchReader:
        self._cursor.execute(self._sql, (*self._params, start, start + self._starts.step))
        return self._cursor.fetch_record_batch()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        yield from self._first
        for start in self._starts[1:]:
            yield from self._page(start)


def _require_utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError(f"Timestamp {moment!r} has no time zone; the warehouse speaks UTC only")
    return moment.astimezone(dt.UTC)


def _epoch_units(moment: dt.datetime, unit: str) -> int:
    delta = _require_utc(moment) - dt.datetime.fromtimestamp(0, dt.UTC)
    micros = delta // dt.timedelta(microseconds=1)
    return micros * _UNITS_PER_SECOND[unit] // 1_000_000


@contextmanager
def _cursor(backend: WarehouseBackend) -> Iterator[tuple[Any, Any]]:
    connection = backend.connect()
    try:
        cursor = connection.cursor()
        try:
            yield connection, cursor
        finally:
            cursor.close()
    finally:
        connection.close()


def create_tables(backend: WarehouseBackend) -> None:
    with _cursor(backend) as (connection, cursor):
        for statement in backend.ddl():
            cursor.execute(statement)
        connection.commit()


@contextmanager
def stream_day_raw(backend: WarehouseBackend, day: dt.date) -> Iterator[DayBatches]:
    """Every row the warehouse holds for the UTC day, as the driver's record batches.

    No column list and no casts: the schema contract gate must see upstream drift (a dropped,
    renamed or retyped column) instead of a SQL error or a silent cast. The batches are valid
    inside the block only; a connection error mid-stream raises while iterating.
    """
    where, params = backend.day_filter(day)
    with _cursor(backend) as (_, cursor):
        if options := backend.read_options():
            cursor.adbc_statement.set_options(**options)
        yield backend.day_batches(cursor, backend.table(backend.contract.table), where, params)


def read_day_raw(backend: WarehouseBackend, day: dt.date) -> pa.Table:
    """The day's raw rows as one table (tests and tools; the source asset streams). A column
    takes the type of the batches where it holds values; elsewhere it is nulls of that type."""
    with stream_day_raw(backend, day) as batches:
        first, pages = batches.schema, list(batches)
    typed: dict[str, pa.DataType] = {}
    for page in pages:
        for field in page.schema:
            if not holds_values(page, field.name):
                continue
            if typed.setdefault(field.name, field.type) != field.type:
                raise ValueError(
                    f"{backend.contract.table}.{field.name} on {day}: the warehouse answered "
                    f"{typed[field.name]} and {field.type} in one day's read"
                )
    schema = pa.schema([f.with_type(typed.get(f.name, f.type)) for f in first])

    def conformed(page: pa.RecordBatch) -> pa.RecordBatch:
        columns = [
            page.column(f.name)
            if page.schema.field(f.name).type == f.type
            else pa.nulls(page.num_rows, f.type)
            for f in schema
        ]
        return pa.RecordBatch.from_arrays(columns, schema=schema)

    return pa.Table.from_batches([conformed(page) for page in pages], schema=schema)


def holds_values(rows: pa.Table | pa.RecordBatch, column: str) -> bool:
    """Whether a column holds any value: one that holds none carries whatever type the driver
    guessed for it (SQLite: int64), which says nothing about the upstream."""
    return rows.column(column).null_count < rows.num_rows


def _canonical_columns(
    raw: pa.Table | pa.RecordBatch, contract: SourceContract
) -> list[pa.Array | pa.ChunkedArray]:
    return [
        # A column with no values carries whatever type the driver guessed (SQLite: int64),
        # which may not cast to the contract's type; it is simply nulls of that type.
        raw.column(f.name).cast(f.type)
        if holds_values(raw, f.name)
        else pa.nulls(raw.num_rows, f.type)
        for f in contract.schema
    ]


def normalize_batch(raw: pa.RecordBatch, contract: SourceContract = SOURCE) -> pa.RecordBatch:
    """Raw rows that passed the schema contract, in the canonical schema (order unchanged)."""
    return pa.RecordBatch.from_arrays(_canonical_columns(raw, contract), schema=contract.schema)


def sort_by_key(events: pa.Table, contract: SourceContract = SOURCE) -> pa.Table:
    return events.sort_by([(name, "ascending") for name in contract.key])


def normalize_events(raw: pa.Table, contract: SourceContract = SOURCE) -> pa.Table:
    """A raw table that passed the schema contract, in the canonical schema and key order."""
    columns = _canonical_columns(raw, contract)
    return sort_by_key(pa.Table.from_arrays(columns, schema=contract.schema), contract)


def replace_day(backend: WarehouseBackend, day: dt.date, events: pa.Table) -> None:
    """Replace every row of the UTC day with `events`, in one transaction (idempotent)."""
    where, params = backend.day_filter(day)
    delete = f"DELETE FROM {backend.table(backend.contract.table)} WHERE {where}"
    with _cursor(backend) as (connection, cursor):
        cursor.execute(delete, params or None)
        if events.num_rows:
            cursor.adbc_ingest(
                backend.contract.table,
                backend.events_for_ingest(events),
                mode="append",
                db_schema_name=backend.ingest_schema(),
            )
        connection.commit()


def read_watermark(
    backend: WarehouseBackend, source_table: str | None = None
) -> dt.datetime | None:
    """The upstream's promise: every row before this instant has been loaded."""
    query = (
        f"SELECT loaded_through FROM {backend.table(backend.contract.watermarks_table)} "
        f"WHERE source_table = {backend.placeholder(1)}"
    )
    with _cursor(backend) as (_, cursor):
        cursor.execute(query, (source_table or backend.contract.table,))
        row = cursor.fetchone()
    return None if row is None else backend.time_from_db(row[0])


def set_watermark(
    backend: WarehouseBackend, loaded_through: dt.datetime, source_table: str | None = None
) -> None:
    upsert = (
        f"INSERT INTO {backend.table(backend.contract.watermarks_table)} "
        f"(source_table, loaded_through) "
        f"VALUES ({backend.placeholder(1)}, {backend.placeholder(2)}) "
        "ON CONFLICT (source_table) DO UPDATE SET loaded_through = excluded.loaded_through"
    )
    with _cursor(backend) as (connection, cursor):
        cursor.execute(
            upsert, (source_table or backend.contract.table, backend.time_param(loaded_through))
        )
        connection.commit()
