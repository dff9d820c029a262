"""Days of events in DuckDB, for every feature table of that day to query.

A snapshot is a local parquet file that DuckDB scans where it lies: each query decodes only
the columns it needs, streaming, and one DuckDB database per process works within a memory
limit, spilling to a temporary directory past it, so days of any size are computed in bounded
memory. (Loading the decoded day into DuckDB once instead kept every column resident: 1.4x the
peak memory of the plain scans at 1M impressions a day, for no gain in time.) Each row keeps
its position in the snapshot (`snapshot_row`), and scans return the rows in that order: the
compensated sums add in it.

The same engine works on any parquet file of a day: it counts distinct keys for the gates, and
sorts the source step's landed rows into the snapshot (a second database, with a smaller
memory limit of its own).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

# What the engine may hold in memory before it spills; the rest of the process (the feature
# table being published, its parquet bytes) comes on top.
MEMORY_LIMIT = "1GB"
# What the source step's sort and key counts may hold: a day streams through them into its
# snapshot beside nothing else. Spilling sooner costs little time and a bigger pool grows the
# peak: 2.7 M events a day sorted in 2.1 s with 1 GB and with 256 MB; 20.4 M in 21.5 s with
# 1 GB (peak 1,574 MiB) and 24.5 s with 256 MB (peak 873 MiB).
FILE_MEMORY_LIMIT = "256MB"
THREADS = 2
# Rows per batch of a streamed result: a few MiB each, small beside a row group.
BATCH_ROWS = 128 * 1024

# One database per memory limit, made when first used.
_databases: dict[str, duckdb.DuckDBPyConnection] = {}
# The process's working directory: DuckDB's spill files and the days' snapshot files.
_directory: Path | None = None
_table_numbers = itertools.count()
# The column of `events` that numbers the day's rows in snapshot order.
SNAPSHOT_ROW = "snapshot_row"


def _database(memory_limit: str = MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    global _directory
    if memory_limit in _databases:
        return _databases[memory_limit]
    if _directory is None:
        _directory = Path(tempfile.mkdtemp(prefix="day-events-"))
    database = duckdb.connect(
        ":memory:",
        config={
            "memory_limit": memory_limit,
            "threads": THREADS,
            "temp_directory": str(_directory / f"spill-{memory_limit}"),
            # Explicit, as the compensated sums rely on it: scans and filters return the
            # rows in the order they were stored (a snapshot file's order), without the
            # sort an ORDER BY would cost; a table created from rows keeps their order.
            "preserve_insertion_order": True,
        },
    )
    # A timestamp's hour is its UTC hour, as on the Spark engine (session zone UTC), not
    # the machine's: GLOBAL, as a plain SET holds for this connection and not its cursors.
    # Without the ICU extension DuckDB knows no zone but UTC and refuses the setting.
    with contextlib.suppress(duckdb.Error):
        database.execute("SET GLOBAL TimeZone = 'UTC'")
    _databases[memory_limit] = database
    return database


@atexit.register
def _close_databases() -> None:
    """At exit: every database closed, then their spill files and the days' snapshot files
    removed (a database's files go only once it is closed)."""
    for database in _databases.values():
        database.close()
    _databases.clear()
    if _directory is not None:
        shutil.rmtree(_directory, ignore_errors=True)


class DayEvents:
    """One day's `events` (the snapshot's columns plus `snapshot_row`), through its own cursor."""

    def __init__(
        self, table: str, *, kind: str = "TABLE", files: Path | None = None, owned: bool = True
    ):
        self._table, self._kind, self._files, self._owned = table, kind, files, owned
        self.connection = _database().cursor()
        # A temporary view is the cursor's own: every query of this day says just `events`.
        self.connection.execute(f"CREATE TEMP VIEW events AS SELECT * FROM {table}")
        [(self.rows,)] = self.connection.execute("SELECT count(*) FROM events").fetchall()

    @staticmethod
    def _new_table() -> str:
        return f"day_events_{next(_table_numbers)}"

    @classmethod
    def from_parquet(cls, path: Path, *, owned: bool = False) -> DayEvents:
        """A snapshot file, scanned where it lies; `snapshot_row` is each row's position in
        the file.
        `owned`: the file's directory is this day's, removed when it closes."""
        view = cls._new_table()
        quoted = str(path).replace("'", "''")
        _database().execute(
            f"CREATE VIEW {view} AS SELECT * RENAME (file_row_number AS {SNAPSHOT_ROW}) "
            f"FROM read_parquet('{quoted}', file_row_number = true)"
        )
        return cls(view, kind="VIEW", files=path.parent if owned else None)

    @classmethod
    def from_parquet_bytes(cls, data: bytes) -> DayEvents:
        """A snapshot object's bytes, as a file of its own until the day closes."""
        _database()
        directory = Path(tempfile.mkdtemp(prefix="snapshot-", dir=_directory))
        path = directory / "events.parquet"
        path.write_bytes(data)
        return cls.from_parquet(path, owned=True)

    @classmethod
    def from_arrow(cls, events: pa.Table) -> DayEvents:
        """An in-memory table's rows, in their order (tests and small days)."""
        table = cls._new_table()
        numbered = events.append_column(SNAPSHOT_ROW, pa.array(np.arange(events.num_rows)))
        cursor = _database().cursor()
        cursor.register("arrow_events", numbered)
        cursor.execute(f"CREATE TABLE {table} AS SELECT * FROM arrow_events")
        cursor.close()
        return cls(table)

    def another_cursor(self) -> DayEvents:
        """The same day through a cursor of its own, for a query on another thread (a cursor
        runs one query at a time); closing it leaves the day open."""
        return DayEvents(self._table, owned=False)

    def arrow(self, query: str) -> pa.Table:
        """A query's whole result as one Arrow table."""
        return self.connection.sql(query).to_arrow_table()

    def batches(self, query: str) -> Iterator[pa.RecordBatch]:
        """A query's result in record batches of at most BATCH_ROWS rows, in its order: only
        the batch in hand is in this process's memory (the engine spills the rest)."""
        yield from self.connection.sql(query).to_arrow_reader(BATCH_ROWS)

    def close(self) -> None:
        """Drop the day: its memory, spill files and snapshot file are freed (another cursor
        of it only closes)."""
        self.connection.close()
        if not self._owned:
            return
        _database().execute(f"DROP {self._kind} IF EXISTS {self._table}")
        if self._files is not None:
            shutil.rmtree(self._files, ignore_errors=True)

    def __enter__(self) -> DayEvents:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# A day's events: an in-memory table (tests, small days) or a day already in the engine.
Events = pa.Table | DayEvents


@contextlib.contextmanager
def open_day(events: Events) -> Iterator[DayEvents]:
    """The events in DuckDB; a table loaded here is dropped on the way out, a caller's day
    stays open for the caller's other tables."""
    if isinstance(events, DayEvents):
        yield events
        return
    with DayEvents.from_arrow(events) as loaded:
        yield loaded


def distinct_keys(path: Path, key: Sequence[str], memory_limit: str = MEMORY_LIMIT) -> int:
    """Distinct values of `key` among a parquet file's rows (nulls one value, as a group-by
    counts them), counted by the engine within `memory_limit`. In a float column the engine
    also counts every NaN as one value and -0.0 as 0.0, where Arrow's group-by tells them
    apart."""
    quoted = str(path).replace("'", "''")
    columns = ", ".join(f'"{column}"' for column in key)
    cursor = _database(memory_limit).cursor()
    try:
        [(count,)] = cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM read_parquet('{quoted}') GROUP BY {columns})"
        ).fetchall()
    finally:
        cursor.close()
    return count


def sorted_by_key(path: Path, key: Sequence[str], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """A parquet file's rows ordered by `key` (nulls last, rows with equal keys in file order,
    as a stable sort leaves them), in record batches of `schema`: the engine sorts within its
    memory limit (FILE_MEMORY_LIMIT), spilling past it, so the day's rows in memory are that
    pool's and the batch in hand, whatever the day's size."""
    quoted = str(path).replace("'", "''")
    order = ", ".join(f'"{column}" ASC NULLS LAST' for column in key)
    cursor = _database(FILE_MEMORY_LIMIT).cursor()
    try:
        reader = cursor.sql(
            f"SELECT * EXCLUDE (file_row_number) FROM read_parquet('{quoted}', "
            f"file_row_number = true) ORDER BY {order}, file_row_number"
        ).to_arrow_reader(BATCH_ROWS)
        # The engine's types name the same values (a zone-aware timestamp in the session's
        # zone, UTC); the contract's schema names them as the snapshot stores them.
        yield from (batch.cast(schema) for batch in reader if batch.num_rows)
    finally:
        cursor.close()
