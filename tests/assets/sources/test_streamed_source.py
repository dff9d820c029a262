"""The source step on a landed day: the engine sorts it into the snapshot and the gates read the
snapshot a column at a time, giving the bytes and the verdicts of the day held as one table
(on the example's click stream and on the second schema's page views); killed mid-stream, it
leaves the approved snapshot as it was."""

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from assets.features import day_events
from assets.features.day_events import sorted_by_key
from assets.partitions import daily_partitions
from assets.publishing.gate_reports import read_published
from assets.publishing.parquet import to_parquet_bytes, write_parquet_file
from assets.quality import distribution, gates, replay
from assets.quality import history as history_gates
from assets.quality.gate_config import GateConfig
from assets.sources.daily_events import (
    ASSET,
    evaluate_source_partition,
    source_null_defaults,
    source_range_defaults,
)
from assets.sources.snapshot_columns import SnapshotColumns
from contract.source import CLICK_STREAM, SourceContract
from resources.notifier import Notifier
from resources.storage.object_store import LocalObjectStore
from resources.storage.resource import LocalObjectStorage
from resources.warehouse.backends import normalize_events, read_day_raw, replace_day, sort_by_key
from resources.warehouse.day_read import collect_day, landing_schema
from resources.warehouse.resource import Warehouse
from scripts.synthetic_events import generate_events
from tests.adapt.page_views import PAGE_VIEWS, generate_page_views
from tests.support.environment import REPO_ROOT
from tests.support.example import example_daily_events, example_sqlite

DAY = dt.date(2026, 11, 5)
LOADED_THROUGH = dt.datetime(2026, 11, 7, tzinfo=dt.UTC)


def _delivered(contract: SourceContract) -> pa.Table:
    """A day as an upstream might deliver it: not in key order, a slice of it delivered twice
    (the same keys, so equal keys must keep their arrival order), a NaN and a missing value in
    a watched numeric column."""
    day = (
        generate_events(DAY, 3_000) if contract is CLICK_STREAM else generate_page_views(DAY, 1_500)
    )
    shuffled = day.take(np.random.default_rng(5).permutation(day.num_rows))
    numeric = contract.watched_numeric[0]
    values = shuffled.column(numeric).to_pylist()
    values[3], values[11] = float("nan"), None
    shuffled = shuffled.set_column(
        shuffled.schema.get_field_index(numeric), shuffled.schema.field(numeric), pa.array(values)
    )
    # The repeated slice differs from its first delivery in a column outside the key, so the
    # order of equal keys shows in the snapshot's bytes.
    again = shuffled.slice(100, 40)
    marked = pc.multiply(again.column(numeric), pa.scalar(3.0))
    again = again.set_column(again.schema.get_field_index(numeric), numeric, marked)
    return pa.concat_tables([shuffled, again.cast(shuffled.schema)])


def _evaluate(contract: SourceContract, raw: pa.Table, tmp_path):
    """The source step on `raw` delivered in batches of 97 rows, the engine handing the sorted
    rows back in batches of 256: many batches on either side of the sort."""
    thresholds = GateConfig().thresholds(
        source_null_defaults(contract), source_range_defaults(contract)
    )
    reader = pa.RecordBatchReader.from_batches(raw.schema, raw.to_batches(max_chunksize=97))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(day_events, "BATCH_ROWS", 256)
        day = collect_day(reader, raw.schema, tmp_path / "landing.parquet", contract)
        evaluation = evaluate_source_partition(
            DAY.isoformat(),
            day,
            LOADED_THROUGH,
            raw.schema,
            LocalObjectStore(tmp_path / "store"),
            thresholds,
            contract=contract,
        )
    return evaluation, thresholds


@pytest.mark.parametrize("contract", [CLICK_STREAM, PAGE_VIEWS], ids=["click_stream", "page_views"])
def test_the_snapshot_is_the_stable_key_sort_of_the_day(contract, tmp_path):
    raw = _delivered(contract)
    evaluation, _ = _evaluate(contract, raw, tmp_path)
    held = sort_by_key(raw.cast(contract.schema), contract)
    expected = to_parquet_bytes(held)
    assert evaluation.table.path.read_bytes() == expected.data
    assert evaluation.table.sha256 == expected.sha256
    assert not (tmp_path / "landing.parquet").exists()


@pytest.mark.parametrize("contract", [CLICK_STREAM, PAGE_VIEWS], ids=["click_stream", "page_views"])
def test_the_gates_read_from_the_file_judge_as_on_the_held_table(contract, tmp_path):
    raw = _delivered(contract)
    evaluation, thresholds = _evaluate(contract, raw, tmp_path)
    held = sort_by_key(raw.cast(contract.schema), contract)
    verdicts = {result.gate: result for result in evaluation.gates}
    assert verdicts["null_rate"] == gates.null_rate(held, thresholds)
    assert verdicts["value_ranges"] == gates.value_ranges(held, thresholds)
    assert not verdicts["value_ranges"].passed
    assert verdicts["unique_key"] == gates.unique_key(held, contract.key, thresholds)
    assert verdicts["unique_key"].value == 40
    assert verdicts["repeated_events"] == gates.repeated_events(
        held, contract.content_key, thresholds
    )
    time_column, content = contract.time_column, contract.replay_content
    assert verdicts["completeness"] == gates.completeness(held, time_column, thresholds)
    profiled = (contract.kind_column, *contract.watched_categorical)
    numeric = contract.watched_numeric
    profile = evaluation.profile
    assert profile[replay.PROFILE_KEY] == replay.content_sketch(held, content, time_column)
    assert profile[distribution.PROFILE_KEY] == distribution.distribution_profile(
        held, contract.watched_categorical, numeric
    )
    assert {k: v for k, v in profile.items() if k in ("hour_share", "categories", "quantiles")} == (
        history_gates.events_profile(held, time_column, profiled, numeric)
    )


@pytest.mark.parametrize("contract", [CLICK_STREAM, PAGE_VIEWS], ids=["click_stream", "page_views"])
def test_a_null_where_the_contract_requires_a_value_is_gated_not_a_crash(contract, tmp_path):
    raw = _delivered(contract)
    key = contract.key[0]
    values = raw.column(key).to_pylist()
    values[5] = values[8] = None
    field = raw.schema.field(key)
    raw = raw.set_column(raw.schema.get_field_index(key), key, pa.array(values, field.type))
    evaluation, thresholds = _evaluate(contract, raw, tmp_path)
    verdicts = {result.gate: result for result in evaluation.gates}
    assert verdicts["null_rate"].blocks and key in verdicts["null_rate"].observed
    held = sort_by_key(raw.cast(landing_schema(contract)), contract)
    assert verdicts["null_rate"] == gates.null_rate(held, thresholds)
    assert verdicts["unique_key"] == gates.unique_key(held, contract.key, thresholds)
    # The nulls sort last, as they would in the held table.
    assert evaluation.table.sha256 == to_parquet_bytes(held).sha256


def test_the_engine_sort_puts_null_keys_last_and_keeps_ties_in_file_order(tmp_path):
    schema = pa.schema([("a", pa.string()), ("b", pa.int64()), ("arrival", pa.int64())])
    rng = np.random.default_rng(11)
    a = rng.choice(["x", "y", None], 5_000).tolist()
    b = [None if v < 2 else int(v) for v in rng.integers(0, 20, 5_000)]
    table = pa.table({"a": a, "b": b, "arrival": np.arange(5_000)}, schema=schema)
    path = tmp_path / "landed.parquet"
    pq.write_table(table, path, row_group_size=700)
    ordered = pa.Table.from_batches(list(sorted_by_key(path, ("a", "b"), schema)), schema)
    assert ordered.equals(table.sort_by([("a", "ascending"), ("b", "ascending")]))


def test_snapshot_columns_hold_one_column_and_batch_the_rows(tmp_path):
    table = generate_events(DAY, 500)
    columns = SnapshotColumns(write_parquet_file(table, tmp_path / "day.parquet"))
    assert columns.num_rows == table.num_rows
    for name in table.schema.names:
        assert columns.column(name).equals(table.column(name))
    assert (
        pa.Table.from_batches(list(columns.batches(["event_id"], 100)))
        .column(0)
        .equals(table.column("event_id"))
    )


def _day_of(contract: SourceContract, day: dt.date) -> pa.Table:
    generated = (
        generate_events(day, 3_000) if contract is CLICK_STREAM else generate_page_views(day, 1_500)
    )
    return sort_by_key(normalize_events(generated, contract).cast(contract.schema), contract)


@pytest.mark.parametrize("contract", [CLICK_STREAM, PAGE_VIEWS], ids=["click_stream", "page_views"])
def test_each_categorical_column_is_decoded_once_for_all_its_gates(contract, tmp_path, monkeypatch):
    # Against a week of history, so every gate on a category judges rather than waits.
    categorical, numeric = contract.watched_categorical, contract.watched_numeric
    profiled = (contract.kind_column, *categorical)
    time_column = contract.time_column

    def profile(table: pa.Table) -> dict:
        return {
            **history_gates.events_profile(table, time_column, profiled, numeric),
            distribution.PROFILE_KEY: distribution.distribution_profile(
                table, categorical, numeric
            ),
        }

    past = [DAY - dt.timedelta(days=n) for n in range(7, 0, -1)]
    dated = [(day.isoformat(), profile(_day_of(contract, day))) for day in past]
    profiles = [entry for _, entry in dated]
    held = _day_of(contract, DAY)
    thresholds = GateConfig().thresholds(
        source_null_defaults(contract), source_range_defaults(contract)
    )
    drift = distribution.DistributionThresholds()
    label = contract.label

    def categorical_gates(events) -> list:
        return [
            history_gates.kind_rate(
                events, contract.kind_column, label.positive_kind, label.exposure_kind
            ),
            history_gates.event_mix(
                events, contract.kind_column, contract.kinds, profiles, thresholds
            ),
            history_gates.category_drift(events, profiled, profiles, thresholds),
            distribution.category_stability(events, dated, categorical, drift),
            distribution.category_cardinality(events, dated, categorical, drift),
            profile(events),
        ]

    decoded = []
    read_table = pq.read_table

    def counted(path, columns, **kwargs):
        decoded.extend(columns)
        return read_table(path, columns=columns, **kwargs)

    monkeypatch.setattr("assets.sources.snapshot_columns.pq.read_table", counted)
    from_file = categorical_gates(SnapshotColumns(write_parquet_file(held, tmp_path / "d.parquet")))
    assert from_file == categorical_gates(held)
    assert all("no baseline" not in str(verdict) for verdict in from_file[1:5])
    assert sorted(name for name in decoded if name in profiled) == sorted(profiled)


# A child materializes the day and SIGKILLs itself once the sort has handed over its first
# batch: the landing file is complete and the snapshot file open for writing, nothing stored.
_KILLED_MID_SORT = """
import os, signal, sys
import dagster as dg
from assets.sources import daily_events
from resources.notifier import Notifier
from resources.storage.resource import LocalObjectStorage
from resources.warehouse.resource import Warehouse
from tests.support.example import example_daily_events

sort = daily_events.sorted_by_key

def sort_then_die(*args):
    for batch in sort(*args):
        yield batch
        os.kill(os.getpid(), signal.SIGKILL)

daily_events.sorted_by_key = sort_then_die
warehouse, store, day = sys.argv[1:]
dg.materialize(
    [example_daily_events],
    partition_key=day,
    resources={
        "warehouse": Warehouse(backend="sqlite", sqlite_path=warehouse),
        "storage": LocalObjectStorage(root=store),
        "notifier": Notifier(),
    },
    instance=dg.DagsterInstance.ephemeral(),
)
"""


@pytest.mark.slow
def test_a_source_step_killed_mid_stream_leaves_the_approved_snapshot(seeded_sqlite, tmp_path):
    day = "2026-11-04"
    warehouse = tmp_path / "warehouse.sqlite"
    shutil.copyfile(seeded_sqlite, warehouse)
    store_root = tmp_path / "store"
    resources = {
        "warehouse": Warehouse(backend="sqlite", sqlite_path=str(warehouse)),
        "storage": LocalObjectStorage(root=str(store_root)),
        "notifier": Notifier(),
    }
    assert dg.materialize([example_daily_events], partition_key=day, resources=resources).success
    store = LocalObjectStore(store_root)
    approved_bytes, approved = read_published(store, ASSET, day, daily_partitions)
    stored = store.list_keys(f"sources/{ASSET}/{day}")
    # The upstream re-delivers the day without ten of its rows: a new version to publish.
    backend = example_sqlite(str(warehouse))
    date = dt.date.fromisoformat(day)
    replace_day(backend, date, normalize_events(read_day_raw(backend, date)).slice(10))

    scratch = tmp_path / "child-tmp"
    scratch.mkdir()
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_SORT, str(warehouse), str(store_root), day],
        cwd=REPO_ROOT,
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # It died mid-stream: the snapshot file was open for writing in its scratch directory.
    assert list(scratch.glob(f"{ASSET}-*/{ASSET}-{day}.parquet"))
    data, report = read_published(store, ASSET, day, daily_partitions)
    assert data == approved_bytes and report.object_key == approved.object_key
    assert store.list_keys(f"sources/{ASSET}/{day}") == stored

    # The day's rerun publishes the re-delivered rows.
    assert dg.materialize([example_daily_events], partition_key=day, resources=resources).success
    _, report = read_published(store, ASSET, day, daily_partitions)
    assert report.object_key != approved.object_key and report.rows == approved.rows - 10
