"""The training trigger: the newest day's successful daily features run requests training at
daily priority; backfills, manual runs, ranges and older days request nothing; a blocked day
fails its features run (so this success-only sensor never sees it) and alerts exactly once."""

import logging
import shutil

import dagster as dg

from assets.partitions import partition_range_tags, training_partitions
from resources.factory import build_resources
from sensors.schedules import DAILY_RUN_TAGS
from sensors.training_trigger import daily_training_sensor, training_request
from tests.support.example import example_daily_events, example_feature_assets
from tests.support.warehouse_edits import drop_hours_from

NEWEST = "2026-11-06"


def _run(**tags) -> dg.DagsterRun:
    return dg.DagsterRun(job_name="daily_features_job", run_id="run-1", tags=tags)


def test_the_newest_days_daily_run_requests_training_at_daily_priority():
    request = training_request(_run(**DAILY_RUN_TAGS, **{"dagster/partition": NEWEST}), NEWEST)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == NEWEST
    assert request.run_key == f"daily-training-{NEWEST}"  # the same day is requested once
    assert request.tags["dagster/priority"] == DAILY_RUN_TAGS["dagster/priority"]
    assert request.tags["features_run_id"] == "run-1"


def test_backfills_manual_runs_ranges_and_older_days_request_nothing():
    daily = {**DAILY_RUN_TAGS, "dagster/partition": NEWEST}
    cases = {
        "part of backfill": _run(**daily, **{"dagster/backfill": "abc"}),
        "daily priority tag": _run(**{"dagster/partition": NEWEST}),
        "range of days": _run(**DAILY_RUN_TAGS, **partition_range_tags("2026-11-01", NEWEST)),
        "the newest day is": _run(**DAILY_RUN_TAGS, **{"dagster/partition": "2026-11-05"}),
    }
    for reason, run in cases.items():
        skip = training_request(run, NEWEST)
        assert isinstance(skip, dg.SkipReason), reason
        assert reason in skip.skip_message


def test_the_sensor_watches_successes_of_the_daily_features_job_only():
    sensor = daily_training_sensor(dg.DefaultSensorStatus.STOPPED)
    assert sensor.job_name == "daily_training_job"
    assert isinstance(sensor, dg.RunStatusSensorDefinition)
    # And it evaluates against the real partitions: the newest training day is yesterday.
    newest = training_partitions.get_last_partition_key()
    assert isinstance(
        training_request(_run(**DAILY_RUN_TAGS, **{"dagster/partition": newest}), newest),
        dg.RunRequest,
    )


def test_a_blocked_day_fails_its_features_run_and_alerts_once(tmp_path, seeded_sqlite, caplog):
    root = tmp_path / "env"
    root.mkdir()
    shutil.copyfile(seeded_sqlite, root / "warehouse.sqlite")
    resources = build_resources("local", local_root=root)
    pipeline = [example_daily_events, *example_feature_assets]
    assert dg.materialize(
        pipeline, resources=resources, tags=partition_range_tags("2026-11-02", "2026-11-05")
    ).success
    assert drop_hours_from(root / "warehouse.sqlite", NEWEST, 18)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="ml_template.alerts"):
        result = dg.materialize(
            pipeline,
            partition_key=NEWEST,
            resources=resources,
            tags=DAILY_RUN_TAGS,
            raise_on_error=False,
        )
    assert not result.success  # so the success-only training sensor never fires for it
    alerts = [r.getMessage() for r in caplog.records if r.name == "ml_template.alerts"]
    assert len(alerts) == 1, alerts
    assert f"daily_events partition {NEWEST}" in alerts[0] and "completeness" in alerts[0]
    assert result.get_asset_materialization_events() == []
