"""Per-key compensated sums: each key's values added in the snapshot's row order with Kahan
compensation (reset when an infinite value makes it NaN), as pandas' grouped-sum kernel adds.

The kernel is called directly, not through `DataFrame.groupby(...).sum()`: pandas 3 hands
group ids that happen to be sorted (a pass holding one key, a day whose rows come in key
order) to `np.add.reduceat`, a pairwise sum, so the same values would sum to other bits by
the accident of their order. Every engine sums through `group_sums`, whatever it ran on.

DuckDB supplies the rows in row order without sorting them: the day's scans keep the
snapshot's order (the database preserves insertion order, see `day_events`), and a filter
keeps it too. All of a key's sums come from one scan, one column each, of the rows that hold a
value some sum adds: a row whose every value is skipped (null, NaN) changes no sum, so it is
not handed over (sums declared over a few of the day's rows, such as purchases, scan the rows
any of them adds). A value skipped beside one that is added is handed over as NaN, which the
kernel skips. A large day is summed in passes over disjoint sets of keys, each holding all of its
keys' rows, so what the kernel holds at once stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas._libs import groupby as pandas_kernels

from assets.features.day_events import DayEvents

# Rows one pass hands to the kernel at most (8 bytes for the key and 8 per value, and about as
# much again in its grouping, up to twice that for a dense key: DENSE_SLOTS_PER_ROW), on
# average: a pass covers whole keys, so the busiest key's pass holds more.
ROWS_PER_PASS = 4_000_000


def present(value: str) -> str:
    """SQL: the rows whose `value` a sum adds (null and NaN are skipped). Written for every
    engine: Spark's isnan(NULL) is false where DuckDB's is NULL."""
    return f"({value}) IS NOT NULL AND NOT isnan({value})"


def as_summed(value: str) -> str:
    """SQL: `value` as the kernel takes it, null as NaN (skipped like NaN)."""
    return f"coalesce({value}, CAST('NaN' AS DOUBLE))"


# A key column of integers spanning at most this many values per row is numbered by its
# values (key - smallest) rather than hashed: at 5M impressions a day that took the user and
# item tables' sums (scans and kernel) from 1.28 to 1.14 s. Sparser integers are hashed rather
# than given an array of slots many times the rows summed at once.
DENSE_SLOTS_PER_ROW = 2


def group_codes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's group number and the key of each number (a dense key's numbers include the
    values between its keys that no row holds)."""
    if keys.dtype.kind in "iu" and len(keys):
        low = keys.min()
        slots = int(keys.max()) - int(low) + 1
        if slots <= DENSE_SLOTS_PER_ROW * len(keys):
            # At 64 bits: a narrow key's difference from its smallest may not fit its type.
            wide = np.uint64 if keys.dtype.kind == "u" else np.int64
            codes = (keys.astype(wide) - wide(low)).astype(np.intp)
            return codes, (np.arange(slots, dtype=wide) + wide(low)).astype(keys.dtype)
    codes, uniques = pd.factorize(keys, sort=False)
    return codes.astype(np.intp, copy=False), np.asarray(uniques)


def group_sums(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct `keys` (in no particular order), and per key and per column of `values`
    (rows in the order they are added) the compensated sum of its non-NaN values (0 for
    none)."""
    # Unsorted where hashed: sorting the distinct keys cost more than the kernel at 5M rows.
    codes, numbered = group_codes(keys)
    groups = len(numbered)
    out = np.zeros((groups, values.shape[1]))
    # The rows of each number (a NaN key's rows have none: factorize numbers them -1).
    rows = np.zeros(groups, dtype=np.int64)
    pandas_kernels.group_sum(
        out=out,
        counts=rows,
        values=np.ascontiguousarray(values, dtype=np.float64),
        labels=codes,
        mask=None,
        result_mask=None,
        min_count=0,
        is_datetimelike=False,
    )
    # Numbers no row holds are not keys of the day.
    held = rows > 0
    return numbered[held], out[held]


@dataclass(frozen=True)
class KeyedSums:
    """Per distinct non-null key (in no particular order), the compensated sum of each value."""

    keys: np.ndarray
    # One row per key, one column per value.
    sums: np.ndarray

    def at(self, keys: pa.Array | pa.ChunkedArray) -> list[np.ndarray]:
        """Per value, its sums placed at `keys` (any order): 0 for a key without any value
        (none of its rows was summed); NaN for a null key, or a float key's NaN, whose rows no
        sum adds (the kernel numbers neither), as on Spark, whose join matches no null."""
        missing = keys.is_null(nan_is_null=True).to_numpy(zero_copy_only=False)
        # The other keys in their own type: an integer column with nulls would come out of
        # Arrow as floats, which cannot tell large integers apart.
        held = keys.filter(pa.array(~missing)).to_numpy(zero_copy_only=False)
        found = pd.Index(self.keys).get_indexer(held)
        sums = np.zeros((len(held), self.sums.shape[1]))
        summed = found >= 0
        sums[summed] = self.sums[found[summed]]
        out = np.full((len(keys), self.sums.shape[1]), np.nan)
        out[~missing] = sums
        return list(out.T)


def summed_rows(key: str, values: list[str]) -> str:
    """SQL: the rows some sum of `values` adds a value of, for a non-null key (no other row
    changes a sum)."""
    return f"{key} IS NOT NULL AND ({' OR '.join(present(value) for value in values)})"


def keyed_sums(day: DayEvents, key: str, values: list[str]) -> KeyedSums:
    """Per key, the compensated sum of each SQL expression of `values` over its present values."""
    columns = ", ".join(
        f"{as_summed(value)} AS value_{number}" for number, value in enumerate(values)
    )
    summed_where = summed_rows(key, values)
    rows_summed = day.rows
    if rows_summed > ROWS_PER_PASS:
        # Passes for the rows summed, not the day's: a sum of a few of the day's rows (its
        # purchases) is one pass. A day that fits one pass anyway is not counted.
        [(rows_summed,)] = day.connection.sql(
            f"SELECT count(*) FROM events WHERE {summed_where}"
        ).fetchall()
    passes = max(1, -(-rows_summed // ROWS_PER_PASS))
    keys, sums = [], []
    for number in range(passes):
        in_pass = f"hash({key}) % {passes} = {number}" if passes > 1 else "TRUE"
        # No ORDER BY: a scan and a filter keep the rows in the snapshot's order.
        rows = day.connection.sql(
            f"SELECT {key} AS key, {columns} FROM events WHERE {summed_where} AND {in_pass}"
        ).fetchnumpy()
        summed = np.column_stack([rows[f"value_{n}"] for n in range(len(values))])
        pass_keys, pass_sums = group_sums(np.asarray(rows["key"]), summed)
        keys.append(pass_keys)
        sums.append(pass_sums)
    # Each pass holds keys of its own, so together they are distinct.
    return KeyedSums(
        keys=np.concatenate(keys) if keys else np.array([]),
        sums=np.concatenate(sums) if sums else np.zeros((0, len(values))),
    )
