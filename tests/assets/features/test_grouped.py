"""The vectorized aggregations give pandas' groupby results to the bit, on data built to break
them: NaN and infinite values, empty and single-row groups, one very large group, tied modes."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from assets.features.grouped import Groups


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = 3000
    # One group holds a third of the rows; the rest spread over many small groups.
    keys = np.where(rng.random(rows) < 0.33, 10**12, rng.integers(-50, 400, rows))
    values = rng.lognormal(2.0, 1.5, rows) * rng.choice([1, -1, 1e-9, 1e9], rows)
    values[rng.random(rows) < 0.1] = np.nan
    values[rng.random(rows) < 0.002] = np.inf
    values[rng.random(rows) < 0.002] = -np.inf
    return keys.astype(np.int64), values


@pytest.mark.parametrize("seed", range(5))
def test_sums_and_means_match_pandas_bit_for_bit(seed):
    keys, values = _random_case(seed)
    groups = Groups.of(pa.chunked_array([keys]))
    frame = pd.DataFrame({"key": keys, "value": values}).groupby("key", sort=True)["value"]

    sums, counts = groups.compensated_sum(values)
    np.testing.assert_array_equal(groups.keys, frame.sum().index.to_numpy())
    assert sums.tobytes() == frame.sum().to_numpy().tobytes()
    assert counts.tolist() == frame.count().tolist()
    assert groups.mean(values).tobytes() == frame.mean().to_numpy().tobytes()


def test_modes_prefer_the_most_frequent_then_the_alphabetically_first_and_skip_nulls():
    keys = pa.chunked_array([[1, 1, 1, 2, 2, 3, 3, 3, 3, 4]])
    values = pa.chunked_array([["b", "a", "b", "z", "y", "c", "a", None, None, None]])
    assert Groups.of(keys).mode(values).to_pylist() == ["b", "y", "a", None]


def test_distinct_counts_and_conditional_counts_per_group():
    groups = Groups.of(pa.chunked_array([[5, 3, 5, 5, 3]]))
    assert groups.keys.tolist() == [3, 5]
    assert groups.distinct(pa.chunked_array([[1, 1, 2, 1, None]])).tolist() == [1, 2]
    assert groups.count(np.array([True, False, True, True, True])).tolist() == [1, 3]
