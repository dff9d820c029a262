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

from resources.event_schema import EVENTS_SCHEMA, EVENTS_TABLE, WATERMARKS_TABLE

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_EVENT_COLUMNS = ", ".join(EVENTS_SCHEMA.names)
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
                event_id TEXT PRIMARY KEY, event_time INTEGER NOT NULL,
                user_id INTEGER NOT NULL, item_id INTEGER NOT NULL, event_type TEXT NOT NULL,
                price REAL, dwell_seconds REAL, device TEXT, country TEXT, item_category TEXT)""",
            f"CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_event_time ON {EVENTS_TABLE} (event_time)",
            f"""CREATE TABLE IF NOT EXISTS {WATERMARKS_TABLE} (
                source_table TEXT PRIMARY KEY, loaded_through INTEGER NOT NULL)""",
        ]

    def time_param(self, moment: dt.datetime) -> int:
        return _epoch_micros(moment)

    def time_from_db(self, value: Any) -> dt.datetime:
        return dt.datetime.fromtimestamp(0, dt.UTC) + dt.timedelta(microseconds=int(value))

    def events_for_ingest(self, events: pa.Table) -> pa.Table:
        index = events.schema.get_field_index("event_time")
        as_micros = pc.cast(events.column("event_time"), pa.int64())
        return events.set_column(index, pa.field("event_time", pa.int64()), as_micros)


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
                event_id TEXT PRIMARY KEY, event_time TIMESTAMPTZ NOT NULL,
                user_id BIGINT NOT NULL, item_id BIGINT NOT NULL, event_type TEXT NOT NULL,
                price DOUBLE PRECISION, dwell_seconds DOUBLE PRECISION, device TEXT,
                country TEXT, item_category TEXT)""",
            f"""CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_event_time
                ON {self.table(EVENTS_TABLE)} (event_time)""",
            f"""CREATE TABLE IF NOT EXISTS {self.table(WATERMARKS_TABLE)} (
                source_table TEXT PRIMARY KEY, loaded_through TIMESTAMPTZ NOT NULL)""",
        ]

    def time_param(self, moment: dt.datetime) -> dt.datetime:
        return _require_utc(moment)

    def time_from_db(self, value: Any) -> dt.datetime:
        return _require_utc(value)

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


def read_events(backend: WarehouseBackend, start: dt.datetime, end: dt.datetime) -> pa.Table:
    """Events with start <= event_time < end, ordered by event_id, in the canonical schema."""
    query = (
        f"SELECT {_EVENT_COLUMNS} FROM {backend.table(EVENTS_TABLE)} "
        f"WHERE event_time >= {backend.placeholder(1)} AND event_time < {backend.placeholder(2)} "
        "ORDER BY event_id"
    )
    with _cursor(backend) as (_, cursor):
        if backend.read_options:
            cursor.adbc_statement.set_options(**backend.read_options)
        cursor.execute(query, (backend.time_param(start), backend.time_param(end)))
        raw = cursor.fetch_arrow_table()
    return raw.select(EVENTS_SCHEMA.names).cast(EVENTS_SCHEMA)


def replace_events(
    backend: WarehouseBackend, start: dt.datetime, end: dt.datetime, events: pa.Table
) -> None:
    """Replace every event in [start, end) with `events`, in one transaction (idempotent load)."""
    delete = (
        f"DELETE FROM {backend.table(EVENTS_TABLE)} WHERE event_time >= "
        f"{backend.placeholder(1)} AND event_time < {backend.placeholder(2)}"
    )
    with _cursor(backend) as (connection, cursor):
        cursor.execute(delete, (backend.time_param(start), backend.time_param(end)))
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
