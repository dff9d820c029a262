"""A table gated from a tally of its batches gets the verdicts the whole table gets, whatever
the batches' sizes: what lets a streamed feature table be gated without holding it."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.quality import gates
from assets.quality.tally import TableTally

THRESHOLDS = gates.GateThresholds(
    max_null_rate={"price": 0.05, "kind": 0.0},
    value_ranges={
        "price": gates.ValueRange(minimum=0, maximum=100),
        "hour": gates.ValueRange(minimum=0, maximum=23),
        "kind": gates.ValueRange(allowed=("click", "impression")),
    },
)


def _table(seed: int, rows: int = 5_000) -> pa.Table:
    """Nulls, NaN, infinities, values below and above their range, unknown kinds."""
    rng = np.random.default_rng(seed)
    price = rng.normal(50, 40, rows)
    price[rng.random(rows) < 0.01] = np.nan
    price[rng.random(rows) < 0.005] = np.inf
    return pa.table(
        {
            "price": pa.array(price, mask=rng.random(rows) < 0.03),
            "hour": pa.array(rng.integers(-2, 26, rows), mask=rng.random(rows) < 0.02),
            "kind": pa.array(
                rng.choice(["click", "impression", "bogus"], rows, p=[0.2, 0.79, 0.01]),
                mask=rng.random(rows) < 0.01,
            ),
            "label": pa.array(rng.random(rows) < 0.1).cast(pa.int8()),
        }
    )


def _tallied(table: pa.Table, batch_rows: int) -> TableTally:
    tally = TableTally(table.schema, THRESHOLDS.value_ranges, ("label",))
    for _ in tally.observe(table.to_batches(max_chunksize=batch_rows)):
        pass
    return tally


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("batch_rows", [1, 7, 1_000, 10_000])
def test_batches_of_any_size_give_the_whole_tables_verdicts(seed, batch_rows):
    table = _table(seed)
    tally = _tallied(table, batch_rows)
    assert tally.rows == table.num_rows
    assert gates.tallied_null_rate(tally, THRESHOLDS) == gates.null_rate(table, THRESHOLDS)
    ranges = gates.tallied_value_ranges(tally, THRESHOLDS)
    assert ranges == gates.value_ranges(table, THRESHOLDS)
    # The case is not vacuous: every kind of break is there to count.
    assert not ranges.passed
    for part in ("NaN or infinite", "price: ", "values < 0", "values > 23", "outside"):
        assert part in ranges.observed
    # An integer label's rate is exact, batch by batch or whole.
    assert tally.mean("label") == pc.mean(table.column("label")).as_py()


def test_the_schema_contract_sees_which_columns_held_a_value():
    table = pa.table({"a": pa.array([None, None], pa.string()), "b": [1, None]})
    tally = _tallied_plain(table)
    assert tally.valued == {"b"}
    expected = pa.schema([("a", pa.int64()), ("b", pa.int64())])
    streamed = gates.schema_contract(table.schema, tally.valued, expected, THRESHOLDS)
    assert streamed.passed  # an all-null column's type is the null gate's to judge
    assert not gates.schema_contract(table.schema, {"a"}, expected, THRESHOLDS).passed


def _tallied_plain(table: pa.Table) -> TableTally:
    tally = TableTally(table.schema, {})
    for batch in table.to_batches(max_chunksize=1):
        tally.add(batch)
    return tally


def test_no_rows_no_rate():
    empty = _table(0).slice(0, 0)
    tally = _tallied(empty, 10)
    assert tally.rows == 0 and tally.mean("label") is None
    assert gates.tallied_null_rate(tally, THRESHOLDS) == gates.null_rate(empty, THRESHOLDS)
