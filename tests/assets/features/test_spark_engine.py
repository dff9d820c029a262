"""The scale-out engine: the feature assets computed by the Spark job (Spark's local mode,
launched through Dagster Pipes) publish the same bytes as the local engine, through the same
gates; the job refuses a snapshot whose bytes are not the approved ones, and a table that has
no query says it can only run locally."""

import hashlib
import json
import shutil

import dagster as dg
import pytest

from assets.features.logic import CLICK_STREAM_FEATURES
from assets.features.snapshot import RUN_SNAPSHOTS
from assets.partitions import daily_partitions, partition_range_tags
from assets.publishing.gate_reports import read_approval
from resources.factory import build_resources
from resources.feature_engine import FeatureEngine, NoEngineOutput, read_output
from tests.adapt.page_view_features import PAGE_VIEW_TABLES
from tests.support.example import example_daily_events, example_feature_assets
from tests.support.spark import spark_unavailable

pytest.importorskip("pyspark", reason="the Spark engine's tests need pyspark (requirements-dev)")

from assets.features.spark.job import SnapshotChanged, declared_tables, stage_snapshot

DAYS = ("2026-11-02", "2026-11-03")
SPARK = FeatureEngine(
    engine="spark",
    declarations="assets.features.logic:CLICK_STREAM_FEATURES",
    spark_master="local[2]",
)


def _published_digests(resources: dict) -> dict[tuple[str, str], str]:
    with dg.build_resources({"storage": resources["storage"]}) as initialized:
        store = initialized.storage.open_store()
    digests = {}
    for table in CLICK_STREAM_FEATURES:
        for day in DAYS:
            approval = read_approval(store, table.name, day, daily_partitions)
            assert approval is not None and approval.passed, (table.name, day)
            digests[(table.name, day)] = approval.content_sha256
    return digests


def _materialize(resources: dict, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [example_daily_events, *example_feature_assets],
        resources=resources,
        tags=partition_range_tags(*DAYS),
        instance=instance,
    )


@pytest.mark.slow
@pytest.mark.skipif(spark_unavailable() is not None, reason=str(spark_unavailable()))
def test_spark_publishes_the_local_engines_bytes_through_the_same_assets(tmp_path, local_root):
    with dg.DagsterInstance.ephemeral() as instance:
        local = build_resources("local", local_root=local_root)
        assert _materialize(local, instance).success
        expected = _published_digests(local)

        spark_root = tmp_path / "spark"
        spark_root.mkdir()
        shutil.copyfile(local_root / "warehouse.sqlite", spark_root / "warehouse.sqlite")
        on_spark = build_resources("local", local_root=spark_root) | {"feature_engine": SPARK}
        loads = RUN_SNAPSHOTS.loads
        result = _materialize(on_spark, instance)
        assert result.success
        # Nothing was computed in this process: no snapshot was read into the local engine.
        assert RUN_SNAPSHOTS.loads == loads
        assert _published_digests(on_spark) == expected
        # The tables came from the Spark job: it reported each table of each day over Pipes.
        messages = [
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if "written to" in (entry.user_message or "")
        ]
        for table in CLICK_STREAM_FEATURES:
            for day in DAYS:
                assert any(f"{table.name} {day}: written to" in m for m in messages), (table, day)

        # The second day's approved snapshot is changed behind the approval: the job refuses
        # that day, naming it, and its approved tables stay published as they were.
        with dg.build_resources({"storage": on_spark["storage"]}) as initialized:
            store = initialized.storage.open_store()
        approval = read_approval(store, "daily_events", DAYS[1], daily_partitions)
        store.put_bytes(approval.object_key, store.get_bytes(approval.object_key) + b"tampered")
        rerun = dg.materialize(
            example_feature_assets,
            resources=on_spark,
            tags=partition_range_tags(*DAYS),
            instance=instance,
            raise_on_error=False,
        )
        assert not rerun.success
        failures = [e for e in rerun.all_events if e.event_type_value == "STEP_FAILURE"]
        assert failures and all(
            f"partition {DAYS[1]}: the snapshot at" in e.step_failure_data.error.message
            and "not the approved" in e.step_failure_data.error.message
            for e in failures
        ), [e.step_failure_data.error.message for e in failures]
        assert _published_digests(on_spark) == expected


def test_spark_reads_a_checked_copy_and_a_changed_snapshot_is_refused(tmp_path):
    snapshot = tmp_path / "events.parquet"
    snapshot.write_bytes(b"approved bytes")
    approved = hashlib.sha256(b"approved bytes").hexdigest()
    staged = tmp_path / "launch" / "snapshots" / "2026-11-02.parquet"
    stage_snapshot("2026-11-02", snapshot.as_uri(), approved, staged.as_uri())
    assert staged.read_bytes() == b"approved bytes"
    snapshot.write_bytes(b"other bytes")
    changed = tmp_path / "launch" / "snapshots" / "2026-11-03.parquet"
    with pytest.raises(SnapshotChanged, match=r"partition 2026-11-02: the snapshot at .* sha256"):
        stage_snapshot("2026-11-02", snapshot.as_uri(), approved, changed.as_uri())
    assert not changed.exists()


def test_the_asset_reads_only_a_complete_output_and_says_why_there_is_none(tmp_path):
    output = (tmp_path / "launch").as_uri()
    table = CLICK_STREAM_FEATURES[0]
    with pytest.raises(NoEngineOutput, match=f"{table.name} 2026-11-02: the Spark job wrote no"):
        read_output(output, table.name, "2026-11-02", table.schema)
    refused = tmp_path / "launch" / "refused" / "2026-11-02.json"
    refused.parent.mkdir(parents=True)
    refused.write_text(json.dumps({"partition": "2026-11-02", "reason": "sha256 differs"}))
    with pytest.raises(NoEngineOutput, match="sha256 differs"):
        read_output(output, table.name, "2026-11-02", table.schema)


def test_a_table_without_a_query_runs_only_on_the_local_engine():
    name = PAGE_VIEW_TABLES[0].name
    with pytest.raises(ValueError, match=f"feature table '{name}' has no query"):
        declared_tables("tests.adapt.page_view_features:PAGE_VIEW_TABLES", [name])
    with pytest.raises(ValueError, match="declares no feature table 'nope'"):
        declared_tables("assets.features.logic:CLICK_STREAM_FEATURES", ["nope"])


def test_an_unknown_engine_is_refused_by_name():
    with pytest.raises(ValueError, match="FEATURE_ENGINE='flink' is not one of"):
        _ = FeatureEngine(engine="flink").runs_in_process


@pytest.mark.slow
@pytest.mark.skipif(spark_unavailable() is not None, reason=str(spark_unavailable()))
def test_spark_reads_the_snapshot_from_the_s3_store_it_was_approved_in(
    s3_bucket, local_resources, monkeypatch
):
    """The production storage on the S3 API server on loopback: the job opens the approved
    snapshot by the store's reader URI (its endpoint and region, not its credentials: the job
    reads with its own identity, here the environment's)."""
    monkeypatch.setenv("OBJECT_STORE_BUCKET", s3_bucket)
    monkeypatch.setenv("OBJECT_STORE_PREFIX", "ml-template/spark")
    on_s3 = {**build_resources("prod"), "warehouse": local_resources["warehouse"]}
    day = DAYS[0]
    with dg.DagsterInstance.ephemeral() as instance:
        assert dg.materialize(
            [example_daily_events, *example_feature_assets],
            resources=on_s3,
            partition_key=day,
            instance=instance,
        ).success
        with dg.build_resources({"storage": on_s3["storage"]}) as initialized:
            store = initialized.storage.open_store()
        snapshot = read_approval(store, "daily_events", day, daily_partitions)
        assert "endpoint_override=127.0.0.1" in store.reader_uri(snapshot.object_key)
        assert "testing" not in store.reader_uri(snapshot.object_key)
        expected = {
            t.name: read_approval(store, t.name, day, daily_partitions).content_sha256
            for t in CLICK_STREAM_FEATURES
        }

        loads = RUN_SNAPSHOTS.loads
        result = dg.materialize(
            example_feature_assets,
            resources={**on_s3, "feature_engine": SPARK},
            partition_key=day,
            instance=instance,
        )
        assert result.success and RUN_SNAPSHOTS.loads == loads
        assert {
            t.name: read_approval(store, t.name, day, daily_partitions).content_sha256
            for t in CLICK_STREAM_FEATURES
        } == expected
        written = [
            e.user_message
            for e in instance.all_logs(result.run_id)
            if "written to" in e.user_message
        ]
        assert len(written) == len(CLICK_STREAM_FEATURES)
