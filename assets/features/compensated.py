"""Per-key compensated sums, bit for bit as pandas' groupby sum and mean compute them.

Each key's values are added in the snapshot's row order with Kahan compensation, resetting the
compensation when an infinite value makes it NaN. pandas' own groupby kernel does exactly that
in one compiled pass over the rows, so the sums are handed to it: no loop in Python, and no
chain as long as the busiest key's rows runs in Python either. DuckDB supplies the rows in row
order without sorting them: the day's scans keep the snapshot's order (the database preserves
insertion order, see `day_events`), and a filter keeps it too. All of a key's sums come from
one scan, one column each: the kernel sums a frame's columns independently and skips NaN, so
a value a sum skips (null, NaN) is handed over as NaN. A large day is summed in passes over
disjoint sets of keys, each holding all of its keys' rows, so what the kernel holds at once
stays bounded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.features.day_events import DayEvents

# Rows one pass hands to pandas at most (8 bytes for the key and 8 per value, and as much again
# in its grouping), on average: a pass covers whole keys, so the busiest key's pass holds more.
ROWS_PER_PASS = 4_000_000


def present(value: str) -> str:
    """SQL: the rows whose `value` a sum adds (NaN and null are skipped, as in pandas)."""
    return f"NOT isnan({value})"


def compensated_sums(
    day: DayEvents, key: str, keys: np.ndarray, values: list[str]
) -> list[np.ndarray]:
    """Per SQL expression of `values`, per key of the ascending `keys`: the compensated sum of
    the expression's present values (0 for a key without any)."""
    out = np.zeros((len(keys), len(values)))
    # Null becomes NaN, which the kernel skips as it skips NaN itself.
    columns = ", ".join(
        f"coalesce({value}, 'NaN'::DOUBLE) AS value_{number}" for number, value in enumerate(values)
    )
    passes = -(-day.rows // ROWS_PER_PASS)
    for number in range(passes):
        in_pass = f"hash({key}) % {passes} = {number}" if passes > 1 else "TRUE"
        # No ORDER BY: a scan and a filter keep the rows in the snapshot's order.
        rows = day.connection.sql(
            f"SELECT {key} AS key, {columns} FROM events WHERE {in_pass}"
        ).fetchnumpy()
        frame = pd.DataFrame({name: rows[name] for name in rows if name != "key"}, copy=False)
        sums = frame.groupby(rows["key"], sort=True).sum()
        out[np.searchsorted(keys, sums.index.to_numpy())] = sums.to_numpy()
    return list(out.T)
