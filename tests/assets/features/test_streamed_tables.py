"""A feature table the size of the day's events streams: the engine hands it over in bounded
batches, the publisher encodes and gates them as they come, and the encoded file is gone once
the partition is published or refused, with the last approved version untouched."""

import dataclasses
import datetime as dt
import tempfile

import dagster as dg
import pyarrow as pa
import pytest

from assets.features.assets import build_feature_asset
from assets.features.day_events import BATCH_ROWS, DayEvents
from assets.features.logic import CLICK_STREAM_FEATURES, as_table, training_examples
from assets.partitions import daily_partitions
from assets.publishing.gate_reports import read_approval, read_published
from assets.publishing.parquet import to_parquet_bytes
from contract.source import CLICK_STREAM
from resources.warehouse.backends import normalize_events
from scripts.synthetic_events import generate_events
from tests.support.example import example_daily_events

PARTITION = "2026-11-03"
EXAMPLES = {table.name: table for table in CLICK_STREAM_FEATURES}["training_examples"]


def test_the_days_examples_come_in_bounded_batches_in_order():
    day = dt.date(2026, 11, 3)
    events = normalize_events(generate_events(day, 150_000), CLICK_STREAM)
    with DayEvents.from_arrow(events) as loaded:
        sizes, ids = [], []
        for batch in training_examples(loaded, day):
            sizes.append(batch.num_rows)
            ids.extend(batch.column("event_id").to_pylist())
    assert len(sizes) > 1 and max(sizes) <= BATCH_ROWS
    assert ids == sorted(ids) and sum(sizes) > BATCH_ROWS


@pytest.fixture
def scratch_root(tmp_path, monkeypatch):
    """Where the feature steps' scratch directories go, to see that nothing is left there.
    The engine's own directory lives as long as the process: it is made first, elsewhere,
    whichever test this process runs first."""
    with DayEvents.from_arrow(pa.table({"x": [1]})):
        pass
    root = tmp_path / "scratch"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def _store(resources):
    with dg.build_resources({"storage": resources["storage"]}) as initialized:
        return initialized.storage.open_store()


def test_a_streamed_table_is_published_as_the_tables_bytes_and_leaves_no_file(
    local_resources, scratch_root
):
    assert dg.materialize(
        [example_daily_events], partition_key=PARTITION, resources=local_resources
    )
    examples_asset = build_feature_asset(EXAMPLES)
    assert dg.materialize(
        [examples_asset], partition_key=PARTITION, resources=local_resources,
        selection=[examples_asset.key],
    )  # fmt: skip
    store = _store(local_resources)
    data, report = read_published(store, EXAMPLES.name, PARTITION, daily_partitions)
    snapshot, _ = read_published(store, "daily_events", PARTITION, daily_partitions)
    with DayEvents.from_parquet_bytes(snapshot) as events:
        whole = as_table(EXAMPLES.compute(events, dt.date.fromisoformat(PARTITION)))
    assert data == to_parquet_bytes(whole).data
    assert report.rows == whole.num_rows and report.profile["label_rate"] > 0
    assert list(scratch_root.iterdir()) == []


def _twice(events, day):
    """The day's examples, every batch delivered twice: each event_id appears two times."""
    computed = training_examples(events, day)

    def batches():
        for batch in computed:
            yield batch
            yield batch

    return pa.RecordBatchReader.from_batches(computed.schema, batches())


def test_duplicate_keys_in_a_stream_block_it_and_keep_the_approved_version(
    local_resources, scratch_root
):
    assert dg.materialize(
        [example_daily_events], partition_key=PARTITION, resources=local_resources
    )
    good = build_feature_asset(EXAMPLES)
    assert dg.materialize([good], partition_key=PARTITION, resources=local_resources)
    store = _store(local_resources)
    approved = read_approval(store, EXAMPLES.name, PARTITION, daily_partitions)

    doubled = build_feature_asset(dataclasses.replace(EXAMPLES, compute=_twice))
    result = dg.materialize(
        [doubled], partition_key=PARTITION, resources=local_resources, raise_on_error=False
    )
    assert not result.success
    [failure] = result.get_step_failure_events()
    message = failure.event_specific_data.error.message
    assert f"unique_key: observed {approved.rows} duplicate rows of {2 * approved.rows}" in message
    assert read_approval(store, EXAMPLES.name, PARTITION, daily_partitions) == approved
    assert list(scratch_root.iterdir()) == []
