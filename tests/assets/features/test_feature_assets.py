"""Feature assets end to end: local and S3 backends, reruns, batched ranges, bad partition keys."""

import hashlib

import dagster as dg
import pyarrow.parquet as pq
import pytest

from assets.features.logic import CLICK_STREAM_FEATURES
from assets.features.snapshot import RUN_SNAPSHOTS
from assets.partitions import daily_partitions, partition_range_tags
from assets.publishing.gate_reports import read_approval, read_published, version_key
from assets.publishing.keys import InvalidPartitionKey, partition_object_key
from assets.publishing.parquet import from_parquet_bytes
from resources.factory import build_resources
from tests.support.example import example_daily_events, example_feature_assets

PARTITION = "2026-11-03"
RANGE = ("2026-11-02", "2026-11-04")
RANGE_KEYS = ["2026-11-02", "2026-11-03", "2026-11-04"]


def materialize(resources, partition_key=None, partition_range=None):
    tags = {}
    if partition_range:
        tags = partition_range_tags(*partition_range)
    return dg.materialize(
        [example_daily_events, *example_feature_assets],
        partition_key=partition_key,
        resources=resources,
        tags=tags,
    )


def open_store(resources):
    # build_resources resolves EnvVar-configured fields the way a run does.
    with dg.build_resources({"storage": resources["storage"]}) as initialized:
        return initialized.storage.open_store()


def published(resources, layer="features") -> dict[str, bytes]:
    store = open_store(resources)
    return {key: store.get_bytes(key) for key in store.list_keys(layer)}


def test_partition_materializes_on_local_backend(local_resources):
    result = materialize(local_resources, PARTITION)
    assert result.success
    store = open_store(local_resources)
    events = {
        e.asset_key.path[-1]: e.materialization for e in result.get_asset_materialization_events()
    }
    assert set(events) == {"daily_events", *(t.name for t in CLICK_STREAM_FEATURES)}
    snapshot = from_parquet_bytes(
        store.get_bytes(events["daily_events"].metadata["object_key"].value)
    )
    assert snapshot.num_rows == events["daily_events"].metadata["source_rows"].value > 0
    for table in CLICK_STREAM_FEATURES:
        data, report = read_published(store, table.name, PARTITION, daily_partitions)
        key = report.object_key
        assert key == version_key(
            table.name, PARTITION, daily_partitions, "features", report.content_sha256
        )
        frame = from_parquet_bytes(data)
        assert frame.schema == table.schema
        assert frame.num_rows > 0
        materialization = events[table.name]
        metadata = materialization.metadata
        assert materialization.partition == PARTITION
        assert metadata["dagster/row_count"].value == frame.num_rows
        assert metadata["object_key"].value == key
        assert metadata["content_sha256"].value == materialization.tags["dagster/data_version"]
        columns = metadata["dagster/column_schema"].value.columns
        assert [c.name for c in columns] == table.schema.names


def test_rerun_overwrites_with_identical_bytes(local_resources):
    materialize(local_resources, PARTITION)
    first = published(local_resources)
    materialize(local_resources, PARTITION)
    assert published(local_resources) == first
    assert len(first) == len(CLICK_STREAM_FEATURES)


def test_range_run_writes_the_same_objects_as_single_runs(local_resources, tmp_path, local_root):
    loads = RUN_SNAPSHOTS.loads
    batched = materialize(local_resources, partition_range=RANGE)
    assert batched.success
    # Each day's snapshot read once in the run, for all three feature tables.
    assert RUN_SNAPSHOTS.loads - loads == len(RANGE_KEYS)
    materializations = [
        (e.asset_key.path[-1], e.materialization.partition)
        for e in batched.get_asset_materialization_events()
    ]
    assert sorted(materializations) == sorted(
        (name, key)
        for name in ("daily_events", *(t.name for t in CLICK_STREAM_FEATURES))
        for key in RANGE_KEYS
    )
    batched_objects = {**published(local_resources), **published(local_resources, "sources")}

    single_root = tmp_path / "single"
    single_root.mkdir()
    (single_root / "warehouse.sqlite").write_bytes((local_root / "warehouse.sqlite").read_bytes())
    single_resources = build_resources("local", local_root=single_root)
    for key in RANGE_KEYS:
        assert materialize(single_resources, key).success
    assert len(batched_objects) == (len(CLICK_STREAM_FEATURES) + 1) * len(RANGE_KEYS)
    single_objects = {**published(single_resources), **published(single_resources, "sources")}
    assert single_objects == batched_objects


def test_batched_run_records_a_content_hash_per_partition(local_resources):
    result = materialize(local_resources, partition_range=RANGE)
    store = open_store(local_resources)
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        data = store.get_bytes(metadata["object_key"].value)
        assert metadata["content_sha256"].value == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("bad_key", ["../x", "2026-13-01", "2026-1-01", "2099-01-01"])
def test_invalid_partition_key_is_refused_and_writes_nothing(local_resources, local_root, bad_key):
    with pytest.raises(dg.DagsterError, match=bad_key.replace(".", r"\.")):
        materialize(local_resources, bad_key)
    with pytest.raises(InvalidPartitionKey, match="Nothing was read or written"):
        partition_object_key("user_daily_features", bad_key, daily_partitions)
    object_store = local_root / "object-store"
    assert not object_store.exists() or not any(object_store.rglob("*"))


def test_partition_materializes_on_s3_backend(s3_bucket, local_root, local_resources, monkeypatch):
    monkeypatch.setenv("OBJECT_STORE_BUCKET", s3_bucket)
    monkeypatch.setenv("OBJECT_STORE_PREFIX", "ml-template/test")
    prod = build_resources("prod")
    # The S3 path under test is the production storage; the events still come from SQLite.
    resources = {**prod, "warehouse": local_resources["warehouse"]}
    assert materialize(resources, PARTITION).success

    s3_objects = published(resources)
    store = open_store(resources)
    assert sorted(s3_objects) == sorted(
        read_approval(store, t.name, PARTITION, daily_partitions).object_key
        for t in CLICK_STREAM_FEATURES
    )
    materialize(local_resources, PARTITION)
    assert s3_objects == published(local_resources)
    assert published(resources, "sources") == published(local_resources, "sources")

    key = read_approval(store, "training_examples", PARTITION, daily_partitions).object_key
    assert store.uri(key) == f"s3://{s3_bucket}/ml-template/test/{key}"
    filesystem, path = store.arrow_location(key)
    assert pq.read_table(path, filesystem=filesystem).num_rows > 0
