"""ADBC access to the event warehouse: SQLite (embedded default) or PostgreSQL (production).

Both backends hold the same rows and answer with the same canonical Arrow schema
(`EVENTS_SCHEMA`); the differences (placeholders, timestamp storage, schemas) live here only.
Dagster-free, so the seeding script and tests use it directly.
"""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from resources.warehouse.event_schema import EVENTS_SCHEMA, EVENTS_TABLE, WATERMARKS_TABLE

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# ADBC SQLite infers result types from the first batch; one batch per query keeps a column
# whose first rows are NULL from being typed INT64 and then rejecting later doubles.
_SQLITE_SINGLE_BATCH = {"adbc.sqlite.query.batch_rows": str(2**30)}


class WarehouseBackend(ABC):
    """One database dialect: how to connect, store timestamps and bind parameters."""

    name: str
    # ADBC statement options set before every read.
    read_options: ClassVar[Mapping[str, str]] = {}

    @abstractmethod
    def connect(self) -> Any: ...

    @abstractmethod
    def placeholder(self, position: int) -> str: ...

    @abstractmethod
    def ddl(self) -> list[str]: ...

    @abstractmethod
    def time_param(self, moment: dt.datetime) -> Any: ...

    @abstractmethod
    def time_from_db(self, value: Any) -> dt.datetime: ...

    @abstractmethod
    def date_param(self, day: dt.date) -> Any: ...

    @abstractmethod
    def raw_schema(self) -> pa.Schema:
        """The Arrow schema this backend returns for a healthy events table."""

    @abstractmethod
    def events_for_ingest(self, events: pa.Table) -> pa.Table: ...

    def table(self, name: str) -> str:
        return name

    def ingest_schema(self) -> str | None:
        return None


class SqliteBackend(WarehouseBackend):
    """Event times stored as INTEGER microseconds since the epoch (SQLite has no timestamp)."""

    name = "sqlite"
    read_options = _SQLITE_SINGLE_BATCH

    def __init__(self, path: str):
        self.path = path

    def connect(self) -> Any:
        import adbc_driver_sqlite.dbapi

        return adbc_driver_sqlite.dbapi.connect(self.path)

    def placeholder(self, position: int) -> str:
        return "?"

    def ddl(self) -> list[str]:
        return [
            f"""CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} (
                event_id TEXT PRIMARY KEY, event_date TEXT NOT NULL, event_time INTEGER NOT NULL,
                user_id INTEGER NOT NULL, item_id INTEGER NOT NULL, event_type TEXT NOT NULL,
                price REAL, dwell_seconds REAL, device TEXT, country TEXT, item_category TEXT)""",
            f"CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_event_date ON {EVENTS_TABLE} (event_date)",
            f"""CREATE TABLE IF NOT EXISTS {WATERMARKS_TABLE} (
                source_table TEXT PRIMARY KEY, loaded_through INTEGER NOT NULL)""",
        ]

    def time_param(self, moment: dt.datetime) -> int:
        return _epoch_micros(moment)

    def time_from_db(self, value: Any) -> dt.datetime:
        return dt.datetime.fromtimestamp(0, dt.UTC) + dt.timedelta(microseconds=int(value))

    def date_param(self, day: dt.date) -> str:
        return day.isoformat()

    def raw_schema(self) -> pa.Schema:
        stored_as = {"event_date": pa.string(), "event_time": pa.int64()}
        return pa.schema(
            pa.field(f.name, stored_as.get(f.name, f.type), f.nullable) for f in EVENTS_SCHEMA
        )

    def events_for_ingest(self, events: pa.Table) -> pa.Table:
        target = self.raw_schema()
        for name in ("event_date", "event_time"):
            index = events.schema.get_field_index(name)
            column = pc.cast(events.column(name), target.field(name).type)
            events = events.set_column(index, target.field(name), column)
        return events


class PostgresBackend(WarehouseBackend):
    """Event times stored as TIMESTAMPTZ; tables live in `schema` (default `public`)."""

    name = "postgres"

    def __init__(self, dsn: str, schema: str = "public"):
        if not _IDENTIFIER.match(schema):
            raise ValueError(f"Postgres schema name {schema!r} is not a plain lowercase identifier")
        self.dsn = dsn
        self.schema = schema

    def connect(self) -> Any:
        import adbc_driver_postgresql.dbapi

        return adbc_driver_postgresql.dbapi.connect(self.dsn)

    def placeholder(self, position: int) -> str:
        return f"${position}"

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}"

    def ingest_schema(self) -> str | None:
        return self.schema

    def ddl(self) -> list[str]:
        return [
            f"CREATE SCHEMA IF NOT EXISTS {self.schema}",
            f"""CREATE TABLE IF NOT EXISTS {self.table(EVENTS_TABLE)} (
                event_id TEXT PRIMARY KEY, event_date DATE NOT NULL,
                event_time TIMESTAMPTZ NOT NULL,
                user_id BIGINT NOT NULL, item_id BIGINT NOT NULL, event_type TEXT NOT NULL,
                price DOUBLE PRECISION, dwell_seconds DOUBLE PRECISION, device TEXT,
                country TEXT, item_category TEXT)""",
            f"""CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_event_date
                ON {self.table(EVENTS_TABLE)} (event_date)""",
            f"""CREATE TABLE IF NOT EXISTS {self.table(WATERMARKS_TABLE)} (
                source_table TEXT PRIMARY KEY, loaded_through TIMESTAMPTZ NOT NULL)""",
        ]

    def time_param(self, moment: dt.datetime) -> dt.datetime:
        return _require_utc(moment)

    def time_from_db(self, value: Any) -> dt.datetime:
        return _require_utc(value)

    def date_param(self, day: dt.date) -> dt.date:
        return day

    def raw_schema(self) -> pa.Schema:
        return EVENTS_SCHEMA

    def events_for_ingest(self, events: pa.Table) -> pa.Table:
        return events


def _require_utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError(f"Timestamp {moment!r} has no time zone; the warehouse speaks UTC only")
    return moment.astimezone(dt.UTC)


def _epoch_micros(moment: dt.datetime) -> int:
    delta = _require_utc(moment) - dt.datetime.fromtimestamp(0, dt.UTC)
    return delta // dt.timedelta(microseconds=1)


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


def read_day_raw(backend: WarehouseBackend, day: dt.date) -> pa.Table:
    """Every row the warehouse files under event_date = day, exactly as the driver returns it.

    No column list and no casts: the schema contract gate must see upstream drift (a dropped,
    renamed or retyped column) instead of a SQL error or a silent cast.
    """
    query = (
        f"SELECT * FROM {backend.table(EVENTS_TABLE)} WHERE event_date = {backend.placeholder(1)}"
    )
    with _cursor(backend) as (_, cursor):
        if backend.read_options:
            cursor.adbc_statement.set_options(**backend.read_options)
        cursor.execute(query, (backend.date_param(day),))
        return cursor.fetch_arrow_table()


def normalize_events(raw: pa.Table) -> pa.Table:
    """A raw table that passed the schema contract, in the canonical schema and event_id order."""
    columns = [
        # A column with no values carries whatever type the driver guessed (SQLite: int64),
        # which may not cast to the contract's type; it is simply nulls of that type.
        pa.nulls(raw.num_rows, f.type)
        if raw.column(f.name).null_count == raw.num_rows
        else raw.column(f.name).cast(f.type)
        for f in EVENTS_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=EVENTS_SCHEMA).sort_by("event_id")


def replace_day(backend: WarehouseBackend, day: dt.date, events: pa.Table) -> None:
    """Replace every event filed under `day` with `events`, in one transaction (idempotent)."""
    delete = (
        f"DELETE FROM {backend.table(EVENTS_TABLE)} WHERE event_date = {backend.placeholder(1)}"
    )
    with _cursor(backend) as (connection, cursor):
        cursor.execute(delete, (backend.date_param(day),))
        if events.num_rows:
            cursor.adbc_ingest(
                EVENTS_TABLE,
                backend.events_for_ingest(events),
                mode="append",
                db_schema_name=backend.ingest_schema(),
            )
        connection.commit()


def read_watermark(
    backend: WarehouseBackend, source_table: str = EVENTS_TABLE
) -> dt.datetime | None:
    """The upstream's promise: every event before this instant has been loaded."""
    query = (
        f"SELECT loaded_through FROM {backend.table(WATERMARKS_TABLE)} "
        f"WHERE source_table = {backend.placeholder(1)}"
    )
    with _cursor(backend) as (_, cursor):
        cursor.execute(query, (source_table,))
        row = cursor.fetchone()
    return None if row is None else backend.time_from_db(row[0])


def set_watermark(
    backend: WarehouseBackend, loaded_through: dt.datetime, source_table: str = EVENTS_TABLE
) -> None:
    upsert = (
        f"INSERT INTO {backend.table(WATERMARKS_TABLE)} (source_table, loaded_through) "
        f"VALUES ({backend.placeholder(1)}, {backend.placeholder(2)}) "
        "ON CONFLICT (source_table) DO UPDATE SET loaded_through = excluded.loaded_through"
    )
    with _cursor(backend) as (connection, cursor):
        cursor.execute(upsert, (source_table, backend.time_param(loaded_through)))
        connection.commit()
