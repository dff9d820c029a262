"""The day's encoded snapshot as the source gates read it: one column at a time.

A gate that judges a column (its hours, its categories, its quantiles) is handed this in place
of the day's table: `column(name)` decodes just that column from the file, and `num_rows` is
the file's. So the gates hold one column of the day, never all of them; the gates that need
whole rows count them by batches (`batches`) or in the engine. A categorical column's value
counts (`value_counts`, all that the gates on it read) are kept once made: a few entries per
distinct value, so the column is decoded once for the day, not once for each of its gates.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from assets.publishing.parquet import ParquetFile
from assets.quality.columns import count_values


class SnapshotColumns:
    """A snapshot file read column by column; the column last read is kept, as consecutive
    gates often judge the same one."""

    def __init__(self, snapshot: ParquetFile):
        self.snapshot = snapshot
        self.num_rows = snapshot.num_rows
        self._last: tuple[str, pa.ChunkedArray] | None = None
        self._counts: dict[str, pa.StructArray] = {}

    def column(self, name: str) -> pa.ChunkedArray:
        if self._last is None or self._last[0] != name:
            # The previous column goes first: this object holds one at a time.
            self._last = None
            self._last = (name, pq.read_table(self.snapshot.path, columns=[name]).column(0))
        return self._last[1]

    def value_counts(self, name: str) -> pa.StructArray:
        """The column's non-null values and how many rows hold each (`columns.value_counts`),
        counted when first asked for."""
        if name not in self._counts:
            self._counts[name] = count_values(self.column(name))
        return self._counts[name]

    def batches(self, columns: Sequence[str], rows: int) -> Iterator[pa.RecordBatch]:
        """The `columns` of the rows in file order, in record batches of at most `rows` rows."""
        with pq.ParquetFile(self.snapshot.path) as file:
            yield from file.iter_batches(rows, columns=columns)
