"""The warehouse as a Dagster resource: Arrow tables of events for a time window."""

import datetime as dt
from typing import Literal

import dagster as dg
import pyarrow as pa
from pydantic import Field

from resources import warehouse_backends as backends


class Warehouse(dg.ConfigurableResource):
    """Event source read through ADBC: SQLite by default, PostgreSQL in production."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: str | None = Field(default=None, description="SQLite file (backend=sqlite).")
    postgres_dsn: str | None = Field(
        default=None, description="postgresql:// URI (backend=postgres); pass it via EnvVar."
    )
    postgres_schema: str = "public"

    def connection_backend(self) -> backends.WarehouseBackend:
        if self.backend == "sqlite":
            if not self.sqlite_path:
                raise ValueError("Warehouse backend 'sqlite' needs sqlite_path")
            return backends.SqliteBackend(self.sqlite_path)
        if not self.postgres_dsn:
            raise ValueError("Warehouse backend 'postgres' needs postgres_dsn (set WAREHOUSE_DSN)")
        return backends.PostgresBackend(self.postgres_dsn, self.postgres_schema)

    def read_events(self, start: dt.datetime, end: dt.datetime) -> pa.Table:
        return backends.read_events(self.connection_backend(), start, end)

    def read_watermark(self) -> dt.datetime | None:
        return backends.read_watermark(self.connection_backend())
