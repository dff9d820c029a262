"""The bad-input corpus: each upstream defect runs through the real assets and gates, is
blocked with a message naming the partition and the gate, and loses nothing."""

import datetime as dt
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
from resources.warehouse.resource import Warehouse
from scripts.synthetic_events import seed_warehouse
from tests.support.environment import POSTGRES_DSN

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
EVENT_COLUMNS = (
    "event_date, event_time, user_id, item_id, event_type, price, dwell_seconds, device, "
    "country, item_category"
)
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
    "click_logger_broke": (
        [f"DELETE FROM events WHERE {IN_DAY} AND event_type <> 'impression'"],
        "event_mix",
    ),
    "late_arriving_tail": (
        # Hours 18-23 keep 3 % of their rows: every hour has events, the day 63 % of its volume.
        [f"DELETE FROM events WHERE {IN_DAY} AND event_time >= {_micros(18)} AND rowid % 33 <> 0"],
        "completeness",
    ),
    "loaded_twice_with_new_ids": (
        [
            f"INSERT INTO events SELECT event_id || '-again', {EVENT_COLUMNS} FROM events "
            f"WHERE {IN_DAY} AND rowid % 5 < 2"
        ],
        "repeated_events",
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
    store = resources["storage"].open_store()
    approved_bytes, _ = read_published(store, "daily_events", BAD_DAY, daily_partitions)
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
    assert "is unchanged and stays in use" in message
    # Nothing downstream ran, and no published byte changed.
    assert not result.get_asset_materialization_events()
    assert _objects(root) == before

    report = read_report(store, "daily_events", BAD_DAY, daily_partitions)
    assert report is not None and not report.passed and expected_gate in report.blocking
    # The refused re-delivery does not take the approved day offline (the default policy).
    assert read_published(store, "daily_events", BAD_DAY, daily_partitions)[0] == approved_bytes
    alerts = [r.getMessage() for r in caplog.records if r.name == "ml_template.alerts"]
    assert any(
        BAD_DAY in text and expected_gate in text and "newer delivery" in text for text in alerts
    ), alerts

    evaluations = [
        entry.dagster_event.event_specific_data
        for entry in instance.all_logs(
            result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
    ]
    failed = {(e.check_name, e.partition) for e in evaluations if not e.passed}
    assert (expected_gate, BAD_DAY) in failed


@pytest.mark.parametrize("policy", ["keep_approved", "take_offline"])
def test_features_run_alone_use_the_approved_snapshot_or_refuse_an_offline_day(
    published_history, tmp_path, policy
):
    root = tmp_path / "env"
    shutil.copytree(published_history, root)
    _execute(root / "warehouse.sqlite", *CORPUS["18_of_24_hours"][0])
    resources = build_resources("local", local_root=root)
    policy_config = {"ops": {"daily_events": {"config": {"on_refused_redelivery": policy}}}}
    blocked = dg.materialize(
        PIPELINE,
        partition_key=BAD_DAY,
        resources=resources,
        run_config=policy_config,
        raise_on_error=False,
    )
    assert not blocked.success
    before = _objects(root)

    # A UI materialization of only the features: it computes from the approved snapshot, or
    # refuses when the refused re-delivery took the day offline.
    result = dg.materialize(
        PIPELINE,
        selection=[a.key for a in feature_assets],
        partition_key=BAD_DAY,
        resources=resources,
        raise_on_error=False,
    )
    assert _objects(root) == before
    if policy == "keep_approved":
        assert result.success
        return
    assert not result.success
    messages = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    assert len(messages) == len(feature_assets)
    assert all("was taken offline" in m and BAD_DAY in m for m in messages)
    with pytest.raises(PartitionNotPublished, match=f"daily_events partition {BAD_DAY} is blocked"):
        read_published(resources["storage"].open_store(), "daily_events", BAD_DAY, daily_partitions)


def test_nan_prices_from_postgres_are_blocked(postgres_backend, tmp_path):
    """PostgreSQL keeps NaN as a value (SQLite turns it into NULL): null_rate cannot see it and
    every range comparison with it is false; value_ranges counts it as invalid."""
    first, bad = dt.date(2026, 11, 2), dt.date.fromisoformat(BAD_DAY)
    seed_warehouse(postgres_backend, first, bad)
    resources = {
        **build_resources("local", local_root=tmp_path),
        "warehouse": Warehouse(
            backend="postgres", postgres_dsn=POSTGRES_DSN, postgres_schema=postgres_backend.schema
        ),
    }
    tags = partition_range_tags(first.isoformat(), BAD_DAY)
    assert dg.materialize([daily_events], resources=resources, tags=tags).success
    with postgres_backend.connect() as connection, connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {postgres_backend.schema}.events SET price = 'NaN' "
            f"WHERE event_date = '{BAD_DAY}' AND right(event_id, 1) = '0'"
        )
        connection.commit()
    result = dg.materialize(
        [daily_events], partition_key=BAD_DAY, resources=resources, raise_on_error=False
    )
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert f"- {BAD_DAY} value_ranges" in message and "NaN or infinite values" in message, message


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
    assert report.passed and completeness["threshold"].startswith(">= 18 hours with")
