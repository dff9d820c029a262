"""The DuckDB aggregations give pandas' groupby results to the bit, on data built to break
them: NaN and infinite values, empty and single-row groups, one very large group, tied modes;
and a day is read from storage once per run, whichever feature table needs it first."""

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.features.assets import evaluate_feature_partition
from assets.features.compensated import group_codes, group_sums, keyed_sums
from assets.features.day_events import DayEvents
from assets.features.logic import CLICK_STREAM_FEATURES, item_daily_features, user_daily_features
from assets.features.snapshot import RUN_SNAPSHOTS
from assets.partitions import daily_partitions
from assets.publishing.gate_reports import read_approval
from assets.quality.gate_config import GateConfig
from resources.factory import local_paths
from resources.storage.object_store import LocalObjectStore
from tests.example.golden_inputs import DAY, golden_inputs
from tests.support.example import example_daily_events


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


def _pandas_sums(keys: np.ndarray, values: np.ndarray) -> bytes:
    """pandas' groupby sum of `values` per key, in the rows' order, as bytes."""
    return pd.Series(values).groupby(keys, sort=True).sum().to_numpy().tobytes()


@pytest.mark.parametrize("seed", range(5))
def test_sums_match_pandas_bit_for_bit_in_row_order(seed):
    keys, values = _random_case(seed)
    # Null values (every 7th row's third sum) are skipped like NaN.
    nulls = np.arange(len(keys)) % 7 == 0
    events = pa.table({"key": keys, "value": pa.array(values), "nulls": pa.array(nulls)})
    with DayEvents.from_arrow(events) as day:
        unique = np.unique(keys)
        # Several sums of one scan, each summed on its own (the same one twice too).
        sums, reversed_sums, with_nulls, again = keyed_sums(
            day,
            "key",
            ["value", "(-value)", "CASE WHEN nulls THEN NULL ELSE value END", "value"],
        ).at(pa.array(unique))
    assert sums.tobytes() == again.tobytes() == _pandas_sums(keys, values)
    assert reversed_sums.tobytes() == _pandas_sums(keys, -values)
    assert with_nulls.tobytes() == _pandas_sums(keys, np.where(nulls, np.nan, values))


@pytest.mark.parametrize(
    "spread", ["dense integers", "sparse integers", "strings", "int8", "int16", "uint64"]
)
def test_each_kind_of_key_gets_its_own_sums_and_only_the_keys_rows_hold(spread):
    # Dense integers are numbered by value, gaps included (no row holds a multiple of 3):
    # those numbers must not come back as keys. Sparse integers and strings are hashed. Narrow
    # and unsigned keys span more than their type holds between smallest and largest.
    keys, values = _random_case(11)
    keys = np.where(keys == 10**12, 401, keys)
    keys = np.where(keys % 3 == 0, keys + 1, keys)
    if spread == "int16":
        # Enough rows for 36,000 values to count as dense.
        keys, values = np.tile(keys, 8), np.tile(values, 8)
    keys = {
        "sparse integers": keys * 10**9,
        "strings": keys.astype(str).astype(object),
        "int8": (keys % 250 - 125).astype(np.int8),
        "int16": (keys * 80 - 16_000).astype(np.int16),
        "uint64": (keys + 60).astype(np.uint64) + np.uint64(2**64 - 500),
    }.get(spread, keys)
    numbered_by_value = len(group_codes(keys)[1]) > len(np.unique(keys))
    assert numbered_by_value == (spread not in ("sparse integers", "strings"))
    summed, sums = group_sums(keys, np.column_stack([values, -values]))
    assert summed.dtype == keys.dtype
    order = np.argsort(summed)
    assert summed[order].tolist() == np.unique(keys).tolist()
    assert sums[order, 0].tobytes() == _pandas_sums(keys, values)
    assert sums[order, 1].tobytes() == _pandas_sums(keys, -values)


def _kahan(values: np.ndarray) -> float:
    """The compensated sum of finite values, one at a time, as pandas' kernel adds them."""
    total = compensation = 0.0
    for value in values:
        corrected = value - compensation
        running = total + corrected
        compensation = (running - total) - corrected
        total = running
    return total


@pytest.mark.parametrize("keys", ["one key", "sorted keys"])
def test_sums_are_compensated_when_the_rows_come_in_key_order(keys):
    # pandas' groupby hands sorted group ids without NaN to np.add.reduceat, a pairwise sum:
    # a day of one key, or rows in key order, would sum to other bits than a shuffled day.
    rng = np.random.default_rng(7)
    rows = 20_000
    key = np.zeros(rows, np.int64) if keys == "one key" else np.sort(rng.integers(0, 5, rows))
    values = rng.lognormal(2.0, 3.0, rows) * rng.choice([1.0, -1.0], rows)
    unique = np.unique(key)
    expected = np.array([_kahan(values[key == k]) for k in unique])
    pairwise = np.add.reduceat(values, np.searchsorted(key, unique))
    assert pairwise.tobytes() != expected.tobytes(), "the case no longer tells the two apart"
    with DayEvents.from_arrow(pa.table({"key": key, "value": values})) as day:
        [sums] = keyed_sums(day, "key", ["value"]).at(pa.array(unique))
    assert sums.tobytes() == expected.tobytes()


def test_sums_follow_the_keys_in_any_order_and_a_null_key_gets_none():
    keys = pa.array([3, None, 1, 3, None, 2, 1], pa.int64())
    values = pa.array([1.0, 100.0, 2.0, 4.0, 200.0, 8.0, 16.0])
    with DayEvents.from_arrow(pa.table({"key": keys, "value": values})) as day:
        # The table's own order: descending, the null key in the middle.
        [sums] = keyed_sums(day, "key", ["value"]).at(pa.array([3, None, 2, 1], pa.int64()))
    assert sums[[0, 2, 3]].tolist() == [5.0, 8.0, 18.0]
    assert np.isnan(sums[1])


def test_sums_of_a_file_add_in_its_row_order_across_row_groups_and_threads(tmp_path):
    # Many small row groups, which DuckDB's threads scan side by side; the big key's rows
    # (a third of them) are spread over all of them.
    keys, values = _random_case(7)
    keys, values = np.tile(keys, 20), np.tile(values, 20) * np.repeat(np.arange(1.0, 21.0), 3000)
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"key": keys, "value": values}), path, row_group_size=1000)
    assert pq.ParquetFile(path).num_row_groups == 60
    unique = np.unique(keys)
    with DayEvents.from_parquet(path) as day:
        [(threads,)] = day.connection.sql("SELECT current_setting('threads')").fetchall()
        assert threads >= 2
        # The rows a sum's scan sees come in file order.
        rows = day.connection.sql("SELECT snapshot_row FROM events WHERE key = 1000000000000")
        assert np.all(np.diff(rows.fetchnumpy()["snapshot_row"]) > 0)
        [sums] = keyed_sums(day, "key", ["value"]).at(pa.array(unique))
    assert sums.tobytes() == _pandas_sums(keys, values)
    # The test can tell: the same rows in another order sum to other bits.
    order = np.random.default_rng(0).permutation(len(keys))
    assert _pandas_sums(keys[order], values[order]) != sums.tobytes()


def _events(user, item, kind, device, category, price=None, dwell=None, country=None) -> pa.Table:
    rows = len(user)
    golden = golden_inputs()["small"]
    base = golden.slice(0, 1).take([0] * rows)
    columns = {
        "user_id": pa.array(user, pa.int64()),
        "item_id": pa.array(item, pa.int64()),
        "event_type": pa.array(kind),
        "device": pa.array(device, pa.string()),
        "item_category": pa.array(category, pa.string()),
        "price": pa.array(price if price is not None else [1.0] * rows, pa.float64()),
        "dwell_seconds": pa.array(dwell if dwell is not None else [None] * rows, pa.float64()),
    }
    if country is not None:
        columns["country"] = pa.array(country, pa.string())
    for name, column in columns.items():
        base = base.set_column(base.schema.get_field_index(name), name, column)
    return base


def test_modes_prefer_the_most_frequent_then_the_alphabetically_first_and_skip_nulls():
    events = _events(
        user=[1, 1, 1, 2, 2, 3, 3, 3, 3, 4],
        item=[9] * 10,
        kind=["impression"] * 10,
        device=["b", "a", "b", "z", "y", "c", "a", None, None, None],
        category=["x"] * 10,
    )
    users = user_daily_features(events, DAY)
    assert users["user_id"].to_pylist() == [1, 2, 3, 4]
    assert users["main_device"].to_pylist() == ["b", "y", "a", None]


def test_each_mode_of_a_key_adds_up_its_own_column_across_the_others_values():
    # Both of a user's modes are read from one grouping by user, device and country: each
    # must add its column's rows across every value of the other (a null one included).
    events = _events(
        user=[1] * 8,
        item=[9] * 8,
        kind=["impression"] * 8,
        device=["web", "web", "web", "app", "app", None, None, None],
        country=["DE", "FR", "US", "FR", "FR", "US", "US", "US"],
        category=["x"] * 8,
    )
    users = user_daily_features(events, DAY)
    # web 3 rows (one per country) against app's 2 in one group; US 4 against FR 3.
    assert users["main_device"].to_pylist() == ["web"]
    assert users["country"].to_pylist() == ["US"]


def test_distinct_counts_and_conditional_counts_per_key():
    events = _events(
        user=[5, 3, 5, 5, 3],
        item=[1, 1, 2, 1, 7],
        kind=["impression", "click", "impression", "purchase", "impression"],
        device=["web"] * 5,
        category=["toys"] * 5,
        price=[1.5, 2.0, 4.0, 8.25, float("nan")],
    )
    users = user_daily_features(events, DAY)
    assert users["user_id"].to_pylist() == [3, 5]
    assert users["distinct_items"].to_pylist() == [2, 2]
    assert users["impressions"].to_pylist() == [1, 2]
    assert users["purchases"].to_pylist() == [0, 1]
    assert users["spend"].to_pylist() == [0.0, 8.25]
    items = item_daily_features(events, DAY)
    assert items["item_id"].to_pylist() == [1, 2, 7]
    # The NaN price is skipped: the item has no price to average.
    assert items["mean_price"].to_pylist() == [(1.5 + 2.0 + 8.25) / 3, 4.0, None]


class CountingStore(LocalObjectStore):
    """The real local store, counting the reads of each key."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads: dict[str, int] = {}

    def get_bytes(self, key: str) -> bytes:
        self.reads[key] = self.reads.get(key, 0) + 1
        return super().get_bytes(key)


def test_a_day_is_read_once_per_run(local_resources, local_root, tmp_path):
    partition = "2026-11-03"
    assert dg.materialize(
        [example_daily_events], partition_key=partition, resources=local_resources
    )
    store = CountingStore(local_paths(local_root).object_store)
    snapshot = read_approval(store, "daily_events", partition, daily_partitions).object_key
    thresholds = GateConfig().thresholds({}, {})
    loads = RUN_SNAPSHOTS.loads
    for run_id in ("first-run", "second-run"):
        for table in CLICK_STREAM_FEATURES:
            evaluation = evaluate_feature_partition(
                table, partition, store, thresholds, run_id, tmp_path
            )
            assert evaluation.table.num_rows > 0
    # One read of the snapshot per run, not one per feature table.
    assert store.reads[snapshot] == 2
    assert RUN_SNAPSHOTS.loads - loads == 2


def test_sums_in_several_passes_are_the_sums_in_one(monkeypatch):
    keys, values = _random_case(0)
    events = pa.table({"key": keys, "value": pa.array(values)})
    with DayEvents.from_arrow(events) as day:
        unique = np.unique(keys)
        whole = keyed_sums(day, "key", ["value", "(-value)"]).at(pa.array(unique))
        monkeypatch.setattr("assets.features.compensated.ROWS_PER_PASS", 700)
        in_passes = keyed_sums(day, "key", ["value", "(-value)"]).at(pa.array(unique))
    assert [sums.tobytes() for sums in in_passes] == [sums.tobytes() for sums in whole]


@pytest.mark.parametrize("rows_per_pass", [400, 100])
def test_only_the_rows_holding_a_value_are_summed_and_a_key_without_one_sums_to_0(
    monkeypatch, rows_per_pass
):
    """Sums declared over a few of the day's rows (purchases: null on every other row) scan the
    rows any of them adds, in passes counted from those rows; a key none of whose rows holds a
    value sums to 0, a null key to NaN; the bits are those of summing every row."""
    keys, values = _random_case(5)
    row = np.arange(len(keys))
    # Each sum adds a tenth of the rows, not the same tenth.
    first, second = row % 10 == 0, row % 10 == 5
    # Key -99's rows hold no value; the null key's do (no sum adds them).
    keys = np.concatenate([keys, [-99, -99, 0, 0]])
    values = np.concatenate([values, [np.nan, np.nan, 7.0, 7.0]])
    first = np.concatenate([first, [False, False, True, True]])
    second = np.concatenate([second, [False, False, True, True]])
    null_key = np.arange(len(keys)) >= len(keys) - 2
    events = pa.table(
        {
            "key": pa.array(keys, mask=null_key),
            "value": pa.array(values),
            "first": pa.array(first),
            "second": pa.array(second),
        }
    )
    declared = ["CASE WHEN first THEN value END", "CASE WHEN second THEN -value END"]
    fetched_rows = []

    class Recording:
        """The day's connection, counting the rows each query hands over to the kernel."""

        def __init__(self, connection):
            self.connection = connection

        def sql(self, query):
            relation = self.connection.sql(query)
            if "value_0" in query:
                fetched_rows.append(len(relation.fetchnumpy()["key"]))
            return relation

        def __getattr__(self, name):
            return getattr(self.connection, name)

    with DayEvents.from_arrow(events) as day:
        day.connection = Recording(day.connection)
        unique = np.unique(keys[~null_key])
        # The day's 3,004 rows would need 8 passes of 400, its 600 summed ones 2; of 100: 6.
        monkeypatch.setattr("assets.features.compensated.ROWS_PER_PASS", rows_per_pass)
        summed = keyed_sums(day, "key", declared)
    sums, negated = summed.at(pa.array(unique))
    [at_null], _ = summed.at(pa.array([None], pa.int64()))
    held, held_keys = ~null_key & ~np.isnan(values), keys[~null_key]
    assert sum(fetched_rows) == np.count_nonzero(held & (first | second))
    assert len(fetched_rows) == -(-sum(fetched_rows) // rows_per_pass)
    assert -99 not in summed.keys and sums[unique == -99].tolist() == [0.0]
    by_key = {
        "first": np.where(first, values, np.nan)[~null_key],
        "second": np.where(second, -values, np.nan)[~null_key],
    }
    assert sums.tobytes() == _pandas_sums(held_keys, by_key["first"])
    assert negated.tobytes() == _pandas_sums(held_keys, by_key["second"])
    assert np.isnan(at_null)


def test_sums_are_placed_at_large_integer_keys_beside_nulls_and_a_float_keys_nan_gets_none():
    """A key column with nulls: its integers are matched as integers (as floats, keys past
    2**53 would run together); a float key's NaN is numbered by no sum, so it gets NaN."""
    big = 2**62
    events = pa.table(
        {
            "key": pa.array([big, big + 1, None, big], pa.int64()),
            "value": pa.array([1.0, 2.0, 4.0, 8.0]),
        }
    )
    with DayEvents.from_arrow(events) as day:
        [sums] = keyed_sums(day, "key", ["value"]).at(events["key"])
    assert sums[[0, 1, 3]].tolist() == [9.0, 2.0, 9.0] and np.isnan(sums[2])
    floats = pa.table({"key": pa.array([0.5, np.nan, 0.5]), "value": pa.array([1.0, 2.0, 4.0])})
    with DayEvents.from_arrow(floats) as day:
        [sums] = keyed_sums(day, "key", ["value"]).at(floats["key"])
    assert sums[[0, 2]].tolist() == [5.0, 5.0] and np.isnan(sums[1])


def test_a_second_cursor_sums_the_same_day_on_another_thread_and_leaves_it_open():
    """The per-key sums run beside the table's query on a cursor of their own: they see the
    same rows in the same order, and closing that cursor does not drop the day."""
    from concurrent.futures import ThreadPoolExecutor

    keys, values = _random_case(3)
    events = pa.table({"key": keys, "value": pa.array(values)})
    with DayEvents.from_arrow(events) as day:
        unique = np.unique(keys)
        with day.another_cursor() as beside, ThreadPoolExecutor(1) as thread:
            summed = thread.submit(keyed_sums, beside, "key", ["value"])
            [(rows,)] = day.connection.execute("SELECT count(*) FROM events").fetchall()
            [sums] = summed.result().at(pa.array(unique))
        assert rows == len(keys)
        assert sums.tobytes() == _pandas_sums(keys, values)
        [(still,)] = day.connection.execute("SELECT count(*) FROM events").fetchall()
    assert still == len(keys)


def test_a_pass_of_nan_keys_alone_sums_for_no_key():
    """A float key's NaN is no key (the kernel numbers it -1): a pass or a Spark bucket holding
    only NaN keys sums nothing rather than failing."""
    keys, sums = group_sums(np.array([np.nan, np.nan]), np.array([[1.0], [2.0]]))
    assert len(keys) == 0 and sums.shape == (0, 1)
    keys, sums = group_sums(np.array([np.nan, 0.5, 0.5]), np.array([[1.0], [2.0], [4.0]]))
    assert keys.tolist() == [0.5] and sums.tolist() == [[6.0]]
