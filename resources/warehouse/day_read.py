"""One day of the source table collected from the warehouse's record batches.

Each batch is normalised to the contract's canonical schema as it arrives and the driver's
batch is dropped, so the day is held once (canonical) rather than raw and canonical together.
What the schema contract gate needs from the raw rows (the driver's schema, which columns held
a value) is counted on the way; once the schema has drifted nothing more is normalised, only
the rows are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from contract.source import SOURCE, SourceContract
from resources.warehouse.backends import normalize_batch, sort_by_key


@dataclass(frozen=True)
class DayRows:
    """The day as read: the driver's schema, its row count, the columns that held a value,
    and the canonical rows in key order (None when the schema drifted from `expected`)."""

    schema: pa.Schema
    rows: int
    valued: frozenset[str]
    events: pa.Table | None


def _drifted(schema: pa.Schema, valued: set[str], expected: pa.Schema) -> bool:
    if set(schema.names) != set(expected.names):
        return True
    return any(schema.field(f.name).type != f.type and f.name in valued for f in expected)


def collect_day(
    reader: pa.RecordBatchReader, expected: pa.Schema, contract: SourceContract = SOURCE
) -> DayRows:
    """Drain `reader`, normalising batch by batch while the schema holds."""
    schema = reader.schema
    valued: set[str] = set()
    rows = 0
    canonical: list[pa.RecordBatch] | None = []
    for batch in reader:
        rows += batch.num_rows
        valued.update(
            name for name in schema.names if batch.column(name).null_count < batch.num_rows
        )
        if canonical is not None and _drifted(schema, valued, expected):
            canonical = None
        if canonical is not None:
            canonical.append(normalize_batch(batch, contract))
    # A day with no batches still has the driver's schema to judge.
    if canonical is not None and _drifted(schema, valued, expected):
        canonical = None
    events = (
        None
        if canonical is None
        else sort_by_key(pa.Table.from_batches(canonical, schema=contract.schema), contract)
    )
    return DayRows(schema=schema, rows=rows, valued=frozenset(valued), events=events)


def collect_table(raw: pa.Table, expected: pa.Schema, contract: SourceContract = SOURCE) -> DayRows:
    """A day already in memory (tests, tools), read as the asset reads a stream."""
    reader = pa.RecordBatchReader.from_batches(raw.schema, raw.to_batches())
    return collect_day(reader, expected, contract)
