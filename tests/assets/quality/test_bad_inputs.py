"""The bad-input corpus: each upstream defect runs through the real assets and gates, is
blocked with a message naming the partition and the gate, and loses nothing."""

import logging
import shutil
import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from assets.features.assets import feature_assets
from assets.partitions import daily_partitions, day_bounds, partition_range_tags
from assets.publishing.gate_reports import PartitionNotPublished, read_published, read_report
from assets.sources.daily_events import daily_events
from resources.factory import build_resources

BAD_DAY = "2026-11-05"
HISTORY = ("2026-10-29", "2026-11-05")
MICROS_PER_HOUR = 3_600_000_000
PIPELINE = [daily_events, *feature_assets]


def _execute(db: Path, *statements: str) -> None:
    with sqlite3.connect(db) as connection:
        for statement in statements:
            connection.execute(statement)


def _micros(hour: int) -> int:
    start, _ = day_bounds(daily_partitions.time_window_for_partition_key(BAD_DAY).start.date())
    return int(start.timestamp()) * 1_000_000 + hour * MICROS_PER_HOUR


IN_DAY = f"event_date = '{BAD_DAY}'"
CORPUS = {
    "missing_column": (["ALTER TABLE events DROP COLUMN device"], "schema_contract"),
    "renamed_column": (
        ["ALTER TABLE events RENAME COLUMN country TO country_code"],
        "schema_contract",
    ),
    "changed_type": (
        [f"UPDATE events SET price = printf('%.2f EUR', price) WHERE {IN_DAY}"],
        "schema_contract",
    ),
    "all_null_column": ([f"UPDATE events SET item_category = NULL WHERE {IN_DAY}"], "null_rate"),
    "empty_day": ([f"DELETE FROM events WHERE {IN_DAY}"], "completeness"),
    "18_of_24_hours": (
        [f"DELETE FROM events WHERE {IN_DAY} AND event_time >= {_micros(18)}"],
        "completeness",
    ),
    "duplicated_rows": (
        [
            "CREATE TABLE events_without_key AS SELECT * FROM events",
            "DROP TABLE events",
            "ALTER TABLE events_without_key RENAME TO events",
            f"INSERT INTO events SELECT * FROM events WHERE {IN_DAY} AND rowid % 10 = 0",
        ],
        "unique_key",
    ),
    "out_of_range_values": (
        [f"UPDATE events SET price = -price WHERE {IN_DAY} AND rowid % 7 = 0"],
        "value_ranges",
    ),
    "timestamps_outside_the_day": (
        [
            f"UPDATE events SET event_time = event_time + {24 * MICROS_PER_HOUR} "
            f"WHERE {IN_DAY} AND rowid % 5 = 0"
        ],
        "within_day",
    ),
    "watermark_short_of_day_end": (
        [f"UPDATE load_watermarks SET loaded_through = {_micros(18)}"],
        "watermark",
    ),
}


@pytest.fixture(scope="module")
def published_history(tmp_path_factory, seeded_sqlite) -> Path:
    """A local environment where every day up to BAD_DAY passed its gates and was published."""
    root = tmp_path_factory.mktemp("published")
    shutil.copyfile(seeded_sqlite, root / "warehouse.sqlite")
    resources = build_resources("local", local_root=root)
    tags = partition_range_tags(*HISTORY)
    assert dg.materialize(PIPELINE, resources=resources, tags=tags).success
    return root


def _objects(root: Path) -> dict[str, bytes]:
    store = root / "object-store"
    return {p.relative_to(store).as_posix(): p.read_bytes() for p in store.rglob("*.parquet")}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bad_input_is_blocked_and_the_last_good_output_survives(
    case, published_history, tmp_path, caplog
):
    root = tmp_path / "env"
    shutil.copytree(published_history, root)
    statements, expected_gate = CORPUS[case]
    _execute(root / "warehouse.sqlite", *statements)
    before = _objects(root)

    resources = build_resources("local", local_root=root)
    instance = dg.DagsterInstance.ephemeral()
    with caplog.at_level(logging.ERROR, logger="ml_template.alerts"):
        result = dg.materialize(
            PIPELINE,
            partition_key=BAD_DAY,
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )

    assert not result.success
    [failure] = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert failure.step_key == "daily_events"
    assert BAD_DAY in message and expected_gate in message, message
    assert "is unchanged" in message
    # Nothing downstream ran, and no published byte changed.
    assert not result.get_asset_materialization_events()
    assert _objects(root) == before

    store = resources["storage"].open_store()
    report = read_report(store, "daily_events", BAD_DAY, daily_partitions)
    assert report is not None and not report.passed and expected_gate in report.blocking
    with pytest.raises(PartitionNotPublished, match=f"daily_events partition {BAD_DAY} is blocked"):
        read_published(store, "daily_events", BAD_DAY, daily_partitions)
    alerts = [r.getMessage() for r in caplog.records if r.name == "ml_template.alerts"]
    assert any(BAD_DAY in text and expected_gate in text for text in alerts), alerts

    evaluations = [
        entry.dagster_event.event_specific_data
        for entry in instance.all_logs(
            result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
    ]
    failed = {(e.check_name, e.partition) for e in evaluations if not e.passed}
    assert (expected_gate, BAD_DAY) in failed


def test_features_refuse_a_blocked_snapshot_when_run_alone(published_history, tmp_path):
    root = tmp_path / "env"
    shutil.copytree(published_history, root)
    _execute(root / "warehouse.sqlite", *CORPUS["18_of_24_hours"][0])
    resources = build_resources("local", local_root=root)
    blocked = dg.materialize(
        PIPELINE, partition_key=BAD_DAY, resources=resources, raise_on_error=False
    )
    assert not blocked.success
    before = _objects(root)

    # A UI materialization of only the features must not compute from the blocked day either.
    result = dg.materialize(
        PIPELINE,
        selection=[a.key for a in feature_assets],
        partition_key=BAD_DAY,
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    messages = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    assert len(messages) == len(feature_assets)
    assert all("is blocked by its quality gates" in m and BAD_DAY in m for m in messages)
    assert _objects(root) == before


def test_a_batch_publishes_its_good_days_and_blocks_the_bad_one(published_history, tmp_path):
    root = tmp_path / "env"
    shutil.copytree(published_history, root)
    _execute(root / "warehouse.sqlite", *CORPUS["duplicated_rows"][0])
    resources = build_resources("local", local_root=root)
    tags = partition_range_tags("2026-11-04", "2026-11-06")
    result = dg.materialize(PIPELINE, resources=resources, tags=tags, raise_on_error=False)
    assert not result.success
    store = resources["storage"].open_store()
    assert read_report(store, "daily_events", "2026-11-06", daily_partitions).passed
    assert not read_report(store, "daily_events", BAD_DAY, daily_partitions).passed
    [failure] = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert f"- {BAD_DAY} unique_key" in message and "- 2026-11-06" not in message


def test_thresholds_are_run_config(published_history, tmp_path):
    """Declaring a known-short day acceptable is a config change, and it is recorded."""
    root = tmp_path / "env"
    shutil.copytree(published_history, root)
    _execute(root / "warehouse.sqlite", *CORPUS["18_of_24_hours"][0])
    resources = build_resources("local", local_root=root)
    run_config = {"ops": {"daily_events": {"config": {"required_hours": 18}}}}
    result = dg.materialize(
        PIPELINE, partition_key=BAD_DAY, resources=resources, run_config=run_config
    )
    assert result.success
    store = resources["storage"].open_store()
    report = read_report(store, "daily_events", BAD_DAY, daily_partitions)
    completeness = next(g for g in report.gates if g["gate"] == "completeness")
    assert report.passed and completeness["threshold"] == ">= 18 hours with events"
