"""The warehouse as a Dagster resource: one day of the source table, the load watermark, and
the retry calibration for transient connection errors."""

import datetime as dt
import random
from pathlib import Path
from typing import Literal

import dagster as dg
import pyarrow as pa
from pydantic import Field

from contract.source import SOURCE, SourceContract
from resources.warehouse import backends
from resources.warehouse.day_read import DayRows, collect_day
from resources.warehouse.errors import retry_delay


class Warehouse(dg.ConfigurableResource):
    """Source table read through ADBC: SQLite by default, PostgreSQL in production.

    The connection is configuration; which table and columns it reads is the source contract
    the caller passes (the project's `SOURCE` unless an asset was built for another).
    """

    backend: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: str | None = Field(default=None, description="SQLite file (backend=sqlite).")
    postgres_dsn: str | None = Field(
        default=None, description="postgresql:// URI (backend=postgres); pass it via EnvVar."
    )
    postgres_schema: str = "public"
    postgres_batch_bytes: int = Field(
        default=backends.POSTGRES_BATCH_BYTES,
        description="Bytes per record batch of a day's read, about (backend=postgres).",
    )
    max_retries: int = Field(default=3, description="Retries of a transient connection error.")
    retry_base_delay_seconds: float = Field(default=2.0, description="Wait before retry 1.")
    retry_jitter: float = Field(default=0.25, description="Random spread of each wait, +/-.")

    def connection_backend(self, contract: SourceContract = SOURCE) -> backends.WarehouseBackend:
        if self.backend == "sqlite":
            if not self.sqlite_path:
                raise ValueError("Warehouse backend 'sqlite' needs sqlite_path")
            return backends.SqliteBackend(self.sqlite_path, contract)
        if not self.postgres_dsn:
            raise ValueError("Warehouse backend 'postgres' needs postgres_dsn (set WAREHOUSE_DSN)")
        return backends.PostgresBackend(
            self.postgres_dsn, self.postgres_schema, contract, self.postgres_batch_bytes
        )

    def read_day_raw(self, day: dt.date, contract: SourceContract = SOURCE) -> pa.Table:
        return backends.read_day_raw(self.connection_backend(contract), day)

    def read_day(self, day: dt.date, landing: Path, contract: SourceContract = SOURCE) -> DayRows:
        """The day streamed from the warehouse, normalised batch by batch into the parquet
        file `landing`."""
        backend = self.connection_backend(contract)
        with backends.stream_day_raw(backend, day) as reader:
            return collect_day(reader, backend.raw_schema(), landing, contract)

    def raw_schema(self, contract: SourceContract = SOURCE) -> pa.Schema:
        return self.connection_backend(contract).raw_schema()

    def read_watermark(self, contract: SourceContract = SOURCE) -> dt.datetime | None:
        return backends.read_watermark(self.connection_backend(contract))

    def retry_delay(self, attempt: int) -> float:
        return retry_delay(
            attempt, self.retry_base_delay_seconds, self.retry_jitter, random.Random()
        )
