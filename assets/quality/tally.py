"""The counts a table's row-level gates judge, added up batch by batch.

A feature table too large to hold (one with a row per event of a day at production volume)
streams from the engine to its parquet file; the tally sees each batch on the way and the gates
judge its counts, so the table is never whole in memory. A table in memory is tallied as its
batches too: both give the same counts, hence the same verdicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from assets.quality.gates import ValueRange


def _count(mask: pa.Array | pa.ChunkedArray) -> int:
    """True values of a boolean mask (nulls are not counted)."""
    return (pc.sum(mask).as_py() or 0) if len(mask) else 0


@dataclass
class TableTally:
    """Rows, nulls per column, NaN or infinite values per float column, values breaking each
    configured range, and the sum of each `mean_columns` column, over the batches added."""

    schema: pa.Schema
    ranges: Mapping[str, ValueRange]
    mean_columns: tuple[str, ...] = ()
    rows: int = 0
    nulls: dict[str, int] = field(default_factory=dict)
    non_finite: dict[str, int] = field(default_factory=dict)
    # (column, "<", ">" or "outside") -> values below the minimum, above the maximum, or not
    # among the allowed values.
    breaks: dict[tuple[str, str], int] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nulls = {name: 0 for name in self.schema.names}
        self.non_finite = {f.name: 0 for f in self.schema if pa.types.is_floating(f.type)}
        self.sums = {name: 0 for name in self.mean_columns}

    @classmethod
    def of_table(
        cls, table: pa.Table, ranges: Mapping[str, ValueRange], mean_columns: tuple[str, ...] = ()
    ) -> TableTally:
        tally = cls(table.schema, ranges, mean_columns)
        tally.add(table)
        return tally

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        self.rows += batch.num_rows
        for name in self.nulls:
            self.nulls[name] += batch.column(name).null_count
        for name in self.non_finite:
            self.non_finite[name] += _count(pc.invert(pc.is_finite(batch.column(name))))
        for name, rule in self.ranges.items():
            column = batch.column(name)
            if rule.allowed is not None:
                # is_in says false for a null; nulls are the null gate's business.
                outside = _count(pc.invert(pc.is_in(column, pa.array(rule.allowed))))
                self._add_break(name, "outside", outside - column.null_count)
                continue
            if rule.minimum is not None:
                self._add_break(name, "<", _count(pc.less(column, rule.minimum)))
            if rule.maximum is not None:
                self._add_break(name, ">", _count(pc.greater(column, rule.maximum)))
        for name in self.sums:
            self.sums[name] += pc.sum(batch.column(name)).as_py() or 0

    def _add_break(self, column: str, kind: str, count: int) -> None:
        self.breaks[(column, kind)] = self.breaks.get((column, kind), 0) + count

    def observe(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """The batches, each added to the tally as it passes."""
        for batch in batches:
            self.add(batch)
            yield batch

    @property
    def valued(self) -> set[str]:
        """The columns that held at least one value."""
        return {name for name, nulls in self.nulls.items() if nulls < self.rows}

    def mean(self, column: str) -> float | None:
        """The mean of a `mean_columns` column over its values (None: no values). Exact for
        integer and boolean columns (a label); a float column's sum depends on the batches."""
        values = self.rows - self.nulls[column]
        return self.sums[column] / values if values else None
