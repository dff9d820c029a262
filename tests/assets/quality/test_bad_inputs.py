"""The bad-input corpus: each upstream defect runs through the real assets and gates, is
blocked with a message naming the partition and the gate (and, for the defects that row-level
gates miss, the observed value, the history it was compared with and the threshold), and
loses nothing."""

import datetime as dt
import logging
import re
import shutil
import sqlite3
import statistics
from pathlib import Path

import dagster as dg
import pytest

from assets.partitions import daily_partitions, day_bounds, partition_range_tags
from assets.publishing.gate_reports import (
    PartitionNotPublished,
    read_approval,
    read_published,
    read_published_with_lineage,
    read_report,
)
from resources.factory import build_resources
from resources.warehouse.resource import Warehouse
from scripts.synthetic_events import seed_warehouse
from tests.support.environment import POSTGRES_DSN
from tests.support.example import example_daily_events, example_feature_assets

BAD_DAY = "2026-11-05"
HISTORY = ("2026-10-29", "2026-11-05")
REPLAYED_DAY = "2026-11-02"
MICROS_PER_HOUR = 3_600_000_000
PIPELINE = [example_daily_events, *example_feature_assets]


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
    # Well-formed row by row, but no longer the same world: every value stays allowed.
    "categorical_collapse": (
        [f"UPDATE events SET device = 'web' WHERE {IN_DAY}"],
        "category_stability",
    ),
    "vocabulary_change": (
        [
            "UPDATE events SET country = CASE country WHEN 'US' THEN 'USA' WHEN 'DE' THEN 'DEU' "
            "WHEN 'BR' THEN 'BRA' WHEN 'IN' THEN 'IND' WHEN 'JP' THEN 'JPN' ELSE 'FRA' END "
            f"WHERE {IN_DAY}"
        ],
        "category_stability",
    ),
    "price_in_cents": (
        # Every price stays inside its allowed range [0, 100000].
        [f"UPDATE events SET price = price * 100 WHERE {IN_DAY}"],
        "numeric_scale",
    ),
    "replayed_day_with_fresh_ids_and_shifted_times": (
        [
            f"DELETE FROM events WHERE {IN_DAY}",
            f"INSERT INTO events SELECT 'replay-' || event_id, '{BAD_DAY}', "
            f"event_time + {3 * 24 * MICROS_PER_HOUR}, user_id, item_id, event_type, price, "
            f"dwell_seconds, device, country, item_category FROM events "
            f"WHERE event_date = '{REPLAYED_DAY}'",
        ],
        "content_replay",
    ),
}


# What the step's error must say beyond the day and the gate, for the defects that row-level
# gates used to miss: the observed value, the history it was compared with, the threshold.
HISTORY_DAYS = 7  # the trailing passed days before BAD_DAY (volume_history)
DETAILS = {
    "click_logger_broke": [
        f"- {BAD_DAY} event_mix: observed impression=1.000;",
        f"within [0.5, 2.0] x its median share over the last {HISTORY_DAYS} passed days (",
        re.compile(r"click 0\.000 vs usual 0\.\d{3}"),
    ],
    "late_arriving_tail": [
        f"- {BAD_DAY} completeness: observed 18 of 24 hours;",
        f">= 24 hours with >= 25% of their usual share of the day's events (usual: the median "
        f"share per hour over the last {HISTORY_DAYS} passed days)",
        "Only a trickle in hours [18, 19, 20, 21, 22, 23] (UTC)",
        # Each thin hour with its observed and its usual share.
        *(re.compile(rf"{hour}h 0\.\d\d% vs \d+\.\d\d%") for hour in range(18, 24)),
    ],
    "loaded_twice_with_new_ids": [
        # 40 % of the day again: 0.4 / 1.4 of the delivered rows repeat others.
        re.compile(rf"- {BAD_DAY} repeated_events: observed \d+ rows \(28\.6%\) repeat"),
        "threshold <= 0.5% of the day's",
    ],
    # The column, the statistic, the history it compared with, and the value that would have
    # passed.
    "categorical_collapse": [
        re.compile(r"- 2026-11-05 category_stability: observed device PSI \d+\.\d{3} \(passes "),
        "device distinct-count change x3.00 (1 distinct values vs usual 3)",
        "compared with the last 7 passed days (2026-10-29 to 2026-11-04)",
        re.compile(r"passes at <= 0\.\d{3}, blocks above 0\.\d{3}"),
    ],
    "vocabulary_change": [
        re.compile(r"- 2026-11-05 category_stability: observed country PSI \d+\.\d{3} "),
        "compared with the last 7 passed days (2026-10-29 to 2026-11-04)",
    ],
    "price_in_cents": [
        re.compile(r"price median shift \(in the history's IQRs\) \d+\.\d{3} \(passes at <= "),
        re.compile(r"price inter-quartile range change x\d+\.\d\d \(passes at <= x1\.\d\d"),
        "price share outside the history's central 90% range 100.0%",
        "compared with the last 7 passed days (2026-10-29 to 2026-11-04)",
    ],
    "replayed_day_with_fresh_ids_and_shifted_times": [
        f"This day repeats {REPLAYED_DAY}: 100.0% of the day's",
        "at most 20% would have passed",
        "(the most similar of 7 passed days, 2026-10-29 to 2026-11-04)",
    ],
}


def _assert_details(message: str, details) -> None:
    for expected in details:
        if isinstance(expected, re.Pattern):
            assert expected.search(message), (expected.pattern, message)
        else:
            assert expected in message, (expected, message)


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
    _assert_details(message, DETAILS.get(case, []))
    # An empty clause ("No events in hours []") is dropped.
    assert "[]" not in message, message
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
        selection=[a.key for a in example_feature_assets],
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
    assert len(messages) == len(example_feature_assets)
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
    assert dg.materialize([example_daily_events], resources=resources, tags=tags).success
    with postgres_backend.connect() as connection, connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {postgres_backend.schema}.events SET price = 'NaN' "
            f"WHERE event_date = '{BAD_DAY}' AND right(event_id, 1) = '0'"
        )
        connection.commit()
        cursor.execute(
            f"SELECT count(*) FROM {postgres_backend.schema}.events "
            f"WHERE event_date = '{BAD_DAY}' AND price = 'NaN'"
        )
        (nan_prices,) = cursor.fetchone()
    assert nan_prices > 0
    result = dg.materialize(
        [example_daily_events], partition_key=BAD_DAY, resources=resources, raise_on_error=False
    )
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    # The observed count, and the rule it broke (no history involved: a NaN is never valid).
    _assert_details(
        message,
        [
            f"- {BAD_DAY} value_ranges: observed price: {nan_prices} NaN or infinite values (",
            "price in [0, 100000]",
            "no NaN or infinite value in any float column",
        ],
    )


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


CLICK_LOGGER_WARN_ONLY = {"ops": {"daily_events": {"config": {"warn_only": ["event_mix"]}}}}


def test_a_broken_click_logger_past_a_warn_only_source_is_blocked_by_the_label_rate(
    published_history, tmp_path, caplog
):
    """With event_mix made warn-only the source publishes the day without clicks; the
    examples computed from it have no positive label, and label_rate blocks them."""
    root = tmp_path / "env"
    shutil.copytree(published_history, root)
    _execute(root / "warehouse.sqlite", *CORPUS["click_logger_broke"][0])
    resources = build_resources("local", local_root=root)
    store = resources["storage"].open_store()
    approved_examples, _ = read_published(store, "training_examples", BAD_DAY, daily_partitions)
    history = [
        read_approval(store, "training_examples", day, daily_partitions).profile["label_rate"]
        for day in daily_partitions.get_partition_keys_in_range(
            dg.PartitionKeyRange(HISTORY[0], "2026-11-04")
        )
    ]
    assert len(history) == HISTORY_DAYS
    median = statistics.median(history)

    with caplog.at_level(logging.ERROR, logger="ml_template.alerts"):
        result = dg.materialize(
            PIPELINE,
            partition_key=BAD_DAY,
            resources=resources,
            run_config=CLICK_LOGGER_WARN_ONLY,
            raise_on_error=False,
        )

    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "training_examples"
    message = failure.step_failure_data.error.message
    low, high = 0.5 * median, 2.0 * median
    # The day, the gate, the observed rate, the band, and the trailing median with its days.
    _assert_details(
        message,
        [
            f"- {BAD_DAY} label_rate: observed label rate 0.0000;",
            f"threshold [{low:.4f}, {high:.4f}] = [0.5, 2.0] x the median {median:.4f} over "
            f"the last {HISTORY_DAYS} passed days",
            "is unchanged and stays in use",
        ],
    )
    # The source warned and published; the features without labels published; the examples
    # did not.
    evaluations = result.get_asset_check_evaluations()
    [event_mix] = [e for e in evaluations if e.check_name == "event_mix"]
    assert event_mix.metadata["partition"].value == BAD_DAY
    assert not event_mix.passed and event_mix.severity == dg.AssetCheckSeverity.WARN
    published = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert published == {"daily_events", "user_daily_features", "item_daily_features"}
    report = read_report(store, "training_examples", BAD_DAY, daily_partitions)
    assert not report.passed and report.blocking == ["label_rate"]
    # The old examples stay approved, but they were computed from the snapshot just replaced:
    # training refuses them by lineage, so no model learns from this day.
    assert read_published(store, "training_examples", BAD_DAY, daily_partitions)[0] == (
        approved_examples
    )
    with pytest.raises(PartitionNotPublished, match="was computed from daily_events"):
        read_published_with_lineage(store, "training_examples", BAD_DAY, daily_partitions)
    alerts = [r.getMessage() for r in caplog.records if r.name == "ml_template.alerts"]
    assert any("training_examples" in a and "label_rate" in a and BAD_DAY in a for a in alerts)


# Every device of the day reported as iOS: row counts, hours, event mix and values stay normal.
DEVICE_DRIFT = [f"UPDATE events SET device = 'ios' WHERE {IN_DAY}"]
# A collapse like this blocks by default (category_stability, category_cardinality; see the
# corpus); a team that declares those gates warn-only gets the day published with warnings.
CATEGORY_GATES_WARN_ONLY = {
    "ops": {
        "daily_events": {"config": {"warn_only": ["category_stability", "category_cardinality"]}}
    }
}


def test_a_drifted_day_publishes_with_a_warning(published_history, tmp_path):
    root = tmp_path / "env"
    shutil.copytree(published_history, root)
    _execute(root / "warehouse.sqlite", *DEVICE_DRIFT)
    resources = build_resources("local", local_root=root)
    store = resources["storage"].open_store()
    before, _ = read_published(store, "daily_events", BAD_DAY, daily_partitions)

    result = dg.materialize(
        PIPELINE,
        partition_key=BAD_DAY,
        resources=resources,
        run_config=CATEGORY_GATES_WARN_ONLY,
    )

    assert result.success
    # A run of one day: the gate's one evaluation is the day's verdict.
    [day] = [e for e in result.get_asset_check_evaluations() if e.check_name == "category_drift"]
    assert not day.passed and day.severity == dg.AssetCheckSeverity.WARN
    assert day.metadata["partition"].value == BAD_DAY
    _assert_details(
        day.description,
        [
            f"{BAD_DAY}: Categorical drift in device (PSI ",
            f"against the median shares over the last {HISTORY_DAYS} passed days (PSI <= 0.25)",
        ],
    )
    assert day.metadata["observed_value"].value > 0.25
    assert day.metadata["threshold_value"].value == 0.25
    assert "device PSI=" in day.metadata["observed"].value
    # Published: the drifted delivery is the approved version now.
    data, report = read_published(store, "daily_events", BAD_DAY, daily_partitions)
    assert report.passed and data != before
    [events] = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "daily_events"
    ]
    # category_drift, and the two distribution gates made warn-only.
    assert events.metadata["gate_warnings"].value == 3


def test_category_drift_listed_in_blocking_drift_blocks(published_history, tmp_path):
    root = tmp_path / "env"
    shutil.copytree(published_history, root)
    _execute(root / "warehouse.sqlite", *DEVICE_DRIFT)
    resources = build_resources("local", local_root=root)
    store = resources["storage"].open_store()
    before = _objects(root)
    approved, _ = read_published(store, "daily_events", BAD_DAY, daily_partitions)
    run_config = {"ops": {"daily_events": {"config": {"blocking_drift": ["category_drift"]}}}}

    result = dg.materialize(
        PIPELINE,
        partition_key=BAD_DAY,
        resources=resources,
        run_config=run_config,
        raise_on_error=False,
    )

    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "daily_events"
    _assert_details(
        failure.step_failure_data.error.message,
        [
            re.compile(rf"- {BAD_DAY} category_drift: observed .*device PSI=\d+\.\d{{3}}"),
            f"threshold PSI <= 0.25 against the median shares over the last {HISTORY_DAYS} "
            "passed days",
            "is unchanged and stays in use",
        ],
    )
    assert _objects(root) == before
    assert read_published(store, "daily_events", BAD_DAY, daily_partitions)[0] == approved


# Every price 30 % higher: a real change or a creeping bug, worth a look but not a stop.
MODERATE_PRICE_RISE = [f"UPDATE events SET price = ROUND(price * 1.3, 2) WHERE {IN_DAY}"]


def test_moderate_distribution_drift_publishes_with_a_warning_per_day(published_history, tmp_path):
    root = tmp_path / "env"
    shutil.copytree(published_history, root)
    _execute(root / "warehouse.sqlite", *MODERATE_PRICE_RISE)
    resources = build_resources("local", local_root=root)
    store = resources["storage"].open_store()
    before, _ = read_published(store, "daily_events", BAD_DAY, daily_partitions)

    result = dg.materialize(PIPELINE, partition_key=BAD_DAY, resources=resources)

    assert result.success
    [day] = [e for e in result.get_asset_check_evaluations() if e.check_name == "numeric_scale"]
    assert not day.passed and day.severity == dg.AssetCheckSeverity.WARN
    assert day.metadata["partition"].value == BAD_DAY
    _assert_details(
        day.description,
        [
            f"{BAD_DAY}: Moderate drift, reported without blocking (compared with the last "
            f"{HISTORY_DAYS} passed days (2026-10-29 to 2026-11-04)): price median shift",
            "blocks above 0.500",
        ],
    )
    data, report = read_published(store, "daily_events", BAD_DAY, daily_partitions)
    assert report.passed and data != before
