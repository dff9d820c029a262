"""One day of the source table landed from the warehouse's record batches into a local file.

Each batch is normalised to the contract's canonical schema as it arrives, appended to a
landing parquet file and dropped, so the day is never whole in memory: the driver's batch in
hand is (bounded: PostgreSQL's size hint, SQLite's pages of rowids). What the schema
contract gate needs from the raw rows (the driver's schema, which columns held a value) is
counted on the way; once the schema has drifted nothing more is normalised or landed, only the
rows are counted. The landed rows are in arrival order; the source asset sorts them by key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from contract.source import SOURCE, SourceContract
from resources.warehouse.backends import DayBatches, holds_values, normalize_batch

# The landing file is read once, by the sort, and removed: fast to write beats small.
_LANDING_SETTINGS = {"compression": "snappy", "write_statistics": False}


@dataclass(frozen=True)
class DayRows:
    """The day as read: the driver's schema, its row count, the columns that held a value,
    the landing file of its canonical rows in arrival order (None when the schema drifted
    from `expected`; the file is then removed) and the contract's required columns that held
    a null anyway (the null-rate gate's to judge)."""

    schema: pa.Schema
    rows: int
    valued: frozenset[str]
    landed: Path | None
    required_with_nulls: frozenset[str] = frozenset()


def landing_schema(contract: SourceContract) -> pa.Schema:
    """The contract's schema with every column nullable: a null where the contract requires a
    value is landed and gated, not refused by the writer."""
    return pa.schema([field.with_nullable(True) for field in contract.schema])


def _drifted(schema: pa.Schema, valued: set[str], expected: pa.Schema) -> bool:
    if set(schema.names) != set(expected.names):
        return True
    return any(schema.field(f.name).type != f.type and f.name in valued for f in expected)


def collect_day(
    reader: DayBatches,
    expected: pa.Schema,
    landing: Path,
    contract: SourceContract = SOURCE,
) -> DayRows:
    """Drain `reader` into the parquet file `landing`, normalising batch by batch while the
    schema holds. Each batch is judged by its own schema (SQLite types each page by its own
    values); the day's schema gives a column the type it held values in, an unexpected one
    if any batch had it."""
    typed: dict[str, pa.DataType] = {}
    expected_types = {f.name: f.type for f in expected}
    required = [f.name for f in contract.schema if not f.nullable]
    with_nulls: set[str] = set()
    rows = 0
    drifted = False
    try:
        with pq.ParquetWriter(landing, landing_schema(contract), **_LANDING_SETTINGS) as writer:
            for batch in reader:
                rows += batch.num_rows
                valued = {f.name for f in batch.schema if holds_values(batch, f.name)}
                for name in valued:
                    # A type the contract does not expect sticks: the schema gate names it.
                    batch_type = batch.schema.field(name).type
                    if name not in typed or batch_type != expected_types.get(name):
                        typed[name] = batch_type
                drifted = drifted or _drifted(batch.schema, valued, expected)
                if not drifted:
                    canonical = normalize_batch(batch, contract)
                    with_nulls.update(n for n in required if canonical.column(n).null_count)
                    writer.write_batch(canonical.cast(writer.schema))
    except BaseException:
        # A read that fails mid-stream (and is retried) leaves no half-landed day behind.
        landing.unlink(missing_ok=True)
        raise
    schema = pa.schema([f.with_type(typed.get(f.name, f.type)) for f in reader.schema])
    # A day with no batches still has the driver's schema to judge.
    if drifted or _drifted(schema, set(typed), expected):
        landing.unlink()
        return DayRows(schema=schema, rows=rows, valued=frozenset(typed), landed=None)
    return DayRows(
        schema=schema,
        rows=rows,
        valued=frozenset(typed),
        landed=landing,
        required_with_nulls=frozenset(with_nulls),
    )


def collect_table(
    raw: pa.Table, expected: pa.Schema, landing: Path, contract: SourceContract = SOURCE
) -> DayRows:
    """A day already in memory (tests, tools), landed as the asset lands a stream."""
    reader = pa.RecordBatchReader.from_batches(raw.schema, raw.to_batches())
    return collect_day(reader, expected, landing, contract)
