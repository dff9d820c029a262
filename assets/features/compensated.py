"""Per-key compensated sums, bit for bit as pandas' groupby sum and mean compute them.

Each key's values are added in the snapshot's row order with Kahan compensation, resetting the
compensation when an infinite value makes it NaN. pandas' own groupby kernel does exactly that
in one compiled pass over the rows, so the sums are handed to it: no loop in Python, and no
chain as long as the busiest key's rows runs in Python either. DuckDB supplies the rows, in
row order, already without the values every sum skips (null and NaN). A large day is summed
in passes over disjoint sets of keys, each holding all of its keys' rows, so what the kernel
holds at once stays bounded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.features.day_events import DayEvents

# Rows one pass hands to pandas at most (about 16 bytes each, and as much again in its
# grouping), on average: a pass covers whole keys, so the busiest key's pass holds more.
ROWS_PER_PASS = 4_000_000


def present(value: str) -> str:
    """SQL: the rows whose `value` a sum adds (NaN and null are skipped, as in pandas)."""
    return f"NOT isnan({value})"


def compensated_sums(day: DayEvents, key: str, keys: np.ndarray, value: str) -> np.ndarray:
    """Per key of the ascending `keys`: the compensated sum of the present values of `value`
    (0 for a key without any)."""
    out = np.zeros(len(keys))
    passes = -(-day.rows // ROWS_PER_PASS)
    for number in range(passes):
        in_pass = f"hash({key}) % {passes} = {number}" if passes > 1 else "TRUE"
        rows = day.connection.sql(
            f"SELECT {key} AS key, {value} AS value FROM events "
            f"WHERE {in_pass} AND {present(value)} ORDER BY row"
        ).fetchnumpy()
        sums = pd.Series(rows["value"], copy=False).groupby(rows["key"], sort=True).sum()
        out[np.searchsorted(keys, sums.index.to_numpy())] = sums.to_numpy()
    return out
