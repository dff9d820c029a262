"""Per-group aggregations over Arrow columns, vectorized with numpy and Arrow compute.

Groups are the sorted distinct values of a key column (`Groups.of`); every aggregation returns
one value per group in that order. The arithmetic is pandas' own (Kahan-compensated sums in row
order, `min` among tied modes), so the feature tables keep the exact bytes they had when they
were computed with pandas' groupby.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Groups:
    """The distinct keys of a column, sorted, and each row's group number."""

    keys: np.ndarray
    of_row: np.ndarray

    @classmethod
    def of(cls, column: pa.ChunkedArray) -> Groups:
        keys, of_row = np.unique(column.to_numpy(), return_inverse=True)
        return cls(keys, of_row.astype(np.intp))

    @property
    def size(self) -> int:
        return len(self.keys)

    def count(self, rows: np.ndarray) -> np.ndarray:
        """How many of the rows where `rows` is true fall in each group."""
        return np.bincount(self.of_row[rows], minlength=self.size).astype(np.int64)

    def distinct(self, column: pa.ChunkedArray) -> np.ndarray:
        """Distinct non-null values of `column` per group."""
        pairs = pa.table({"group": self.of_row, "value": column}).filter(pc.is_valid(column))
        unique = pairs.group_by(["group", "value"], use_threads=False).aggregate([])
        return np.bincount(unique["group"].to_numpy(), minlength=self.size).astype(np.int64)

    def compensated_sum(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per group: the sum of the non-NaN values and how many there are.

        Each group is summed in row order with Kahan compensation, exactly as pandas' groupby
        sum and mean do. The loop runs once per position within a group (the largest group's
        size), each pass vectorized over the groups that long.
        """
        present = ~np.isnan(values)
        groups, values = self.of_row[present], values[present]
        order = np.argsort(groups, kind="stable")
        values = values[order]
        counts = np.bincount(groups, minlength=self.size)
        starts = np.cumsum(counts) - counts
        # Longest groups first, so the groups still summing at position p are a prefix.
        by_size = np.argsort(-counts, kind="stable")
        descending = -counts[by_size]
        sums, compensation = np.zeros(self.size), np.zeros(self.size)
        # inf - inf is NaN here as in pandas' loop; it is expected, not worth a warning.
        with np.errstate(invalid="ignore"):
            for position in range(int(counts.max(initial=0))):
                active = by_size[: np.searchsorted(descending, -position, side="left")]
                y = values[starts[active] + position] - compensation[active]
                total = sums[active] + y
                error = (total - sums[active]) - y
                # An infinite value makes the error NaN; pandas resets it so the sum stays
                # infinite.
                compensation[active] = np.where(np.isnan(error), 0.0, error)
                sums[active] = total
        return sums, counts.astype(np.int64)

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Per-group mean of the non-NaN values; NaN for a group without any."""
        sums, counts = self.compensated_sum(values)
        return np.divide(sums, counts, out=np.full(self.size, np.nan), where=counts > 0)

    def mode(self, column: pa.ChunkedArray) -> pa.Array:
        """Per group, the most frequent non-null value; ties go to the alphabetically first, so
        the result never depends on row order. Null for a group with no values."""
        present = pc.is_valid(column).to_numpy(zero_copy_only=False)
        encoded = pc.dictionary_encode(column.filter(present)).combine_chunks()
        dictionary = encoded.dictionary
        # Each distinct value's alphabetical rank (Arrow orders strings by code point, as
        # Python's min does).
        rank = np.asarray(pc.rank(dictionary, sort_keys="ascending"), dtype=np.int64)
        value_rank = rank[encoded.indices.to_numpy(zero_copy_only=False)]
        pairs = self.of_row[present].astype(np.int64) * (len(dictionary) + 1) + value_rank
        pair, frequency = np.unique(pairs, return_counts=True)
        group, value_rank = np.divmod(pair, len(dictionary) + 1)
        # Per group: highest frequency first, then the lowest rank; the first row wins.
        order = np.lexsort((value_rank, -frequency, group))
        first = order[np.r_[True, group[order][1:] != group[order][:-1]]] if len(order) else order
        by_rank = pc.sort_indices(dictionary).to_numpy()
        winners = np.full(self.size, -1, dtype=np.int64)
        winners[group[first]] = by_rank[value_rank[first] - 1]
        return dictionary.take(pa.array(winners, mask=winners < 0))
