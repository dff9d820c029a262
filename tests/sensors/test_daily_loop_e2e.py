"""The daily loop through the real dagster-daemon and dagster-webserver: the daily features
run of the newest day (the schedule's tick, as the UI's "Test schedule" launches it) succeeds,
the training sensor requests `daily_training_job` for that day at daily priority, and the day
ends guarded, trained and evaluated without anyone launching anything else.

The day before, a damaged candidate that passed its own (relaxed) evaluation was promoted over
a good model (tests/support/guard.py): the newest day's run judges it on the newest day's rows
and rolls production back to the good model before it trains from production."""

import datetime as dt
import time

import dagster as dg
import pytest

from assets.features.assets import feature_assets
from assets.guard.records import ALERTS_PREFIX, read_verdict
from assets.model.records import read_evaluation
from assets.partitions import day_bounds, partition_range_tags, training_partitions
from assets.slo.alerts import marker_key
from assets.sources.daily_events import daily_events
from resources.factory import build_resources
from resources.registry.registry import PRODUCTION
from resources.storage.object_store import LocalObjectStore
from resources.warehouse.backends import SqliteBackend
from scripts.dagster_processes import LOCATION, REPOSITORY, DagsterProcesses, embedded_home
from scripts.synthetic_events import seed_warehouse
from sensors.schedules import DAILY_RUN_PRIORITY
from tests.support.guard import DAMAGED, GOOD, LAX, train_and_promote

# Runs the project's definitions on the example's seeded data (fails saying so otherwise).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("example_project")]

SENSOR_TICKS = """
query($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { sensorState { ticks(limit: 5) { timestamp status } } }
  }
}
"""

START_SENSOR = """
mutation($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
  }
}
"""


def _wait_for_run(instance, job: str, timeout: float) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=job))
        if runs and runs[0].is_finished:
            return runs[0]
        time.sleep(1)
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=job))
    raise TimeoutError(
        f"no finished {job} run after {timeout}s (runs: {[(r.run_id, r.status) for r in runs]})"
    )


def _tick_after(dagster, selector: dict, moment: float, timeout: float) -> dict:
    """The sensor's first finished tick that began after `moment` (its evaluation saw every
    run event written before then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = dagster.graphql(SENSOR_TICKS, {"selector": selector})["sensorOrError"]
        finished = [
            tick
            for tick in state["sensorState"]["ticks"]
            if tick["timestamp"] > moment and tick["status"] != "STARTED"
        ]
        if finished:
            return min(finished, key=lambda tick: tick["timestamp"])
        time.sleep(1)
    raise TimeoutError(f"no tick of {selector['sensorName']} after {moment} in {timeout}s")


def test_newest_day_is_trained_and_evaluated_after_its_features_run(tmp_path):
    newest = dt.date.fromisoformat(training_partitions.get_last_partition_key())
    # A full window for the good model of newest - 2 (newest - 8 .. newest - 2).
    first = newest - dt.timedelta(days=8)
    root = tmp_path / "local"
    root.mkdir()
    # Thirty days on record: the window, and a month for the feature backfill below.
    month = [newest - dt.timedelta(days=n) for n in range(29, -1, -1)]
    seed_warehouse(SqliteBackend(str(root / "warehouse.sqlite")), month[0], newest)
    resources = build_resources("local", local_root=root)
    # The earlier days were approved on their own days.
    earlier = partition_range_tags(first.isoformat(), (newest - dt.timedelta(1)).isoformat())
    assert dg.materialize(
        [daily_events, *feature_assets], resources=resources, tags=earlier
    ).success
    # A good model of newest - 2, then a damaged one of newest - 1 promoted over it.
    good = train_and_promote(resources, (newest - dt.timedelta(2)).isoformat(), GOOD)
    bad = train_and_promote(resources, (newest - dt.timedelta(1)).isoformat(), DAMAGED, LAX)
    registry = resources["registry"].open_registry()
    assert registry.history(PRODUCTION)[-1].from_version == good.version

    home = embedded_home(tmp_path / "dagster_home")
    env = {"LOCAL_DATA_DIR": str(root), "DAGSTER_DEPLOYMENT": "local"}
    with DagsterProcesses(home, env, log_dir=tmp_path) as dagster:
        selector = {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "sensorName": "daily_training_sensor",
        }
        before_start = time.time()
        started = dagster.graphql(START_SENSOR, {"selector": selector})["startSensor"]
        assert started["__typename"] == "Sensor", started
        # A run-status sensor starts from the newest run event at its first tick: let it take
        # that cursor before the features run exists (on an idle machine the run took 4 s and
        # ended just before that tick, which then never saw it).
        _tick_after(dagster, selector, before_start, timeout=300)
        # The schedule's tick for the newest day (06:00 UTC the day after it).
        tick = day_bounds(newest)[1] + dt.timedelta(hours=6)
        requested = time.monotonic()
        features_run_id = dagster.fire_schedule_tick(
            "daily_features_schedule", "daily_features_job", tick.timestamp()
        )
        with dg.DagsterInstance.from_config(str(home)) as instance:
            # Generous: the guard and a 400-step training on a shared 2-core machine.
            training_run = _wait_for_run(instance, "daily_training_job", timeout=900)
            evaluated = time.monotonic()
            features_run = instance.get_run_by_id(features_run_id)
            assert features_run.status == dg.DagsterRunStatus.SUCCESS
            assert features_run.tags["dagster/priority"] == DAILY_RUN_PRIORITY
            assert training_run.status == dg.DagsterRunStatus.SUCCESS, dagster.logs()
            assert training_run.tags["dagster/partition"] == newest.isoformat()
            assert training_run.tags["dagster/priority"] == DAILY_RUN_PRIORITY
            assert training_run.tags["features_run_id"] == features_run_id
            assert "dagster/backfill" not in training_run.tags
            assert len(instance.get_runs(filters=dg.RunsFilter(job_name="daily_training_job"))) == 1
            features_end = instance.get_run_record_by_id(features_run_id).end_time
            training_start = instance.get_run_record_by_id(training_run.run_id).start_time

            # A 30-day feature backfill from the UI, newest day included, trains nothing: the
            # sensor sees its successful runs and skips them (backfill tag).
            backfill = dagster.launch_asset_backfill(
                ["daily_events", *(asset.key.path[-1] for asset in feature_assets)],
                [day.isoformat() for day in month],
            )
            assert dagster.wait_for_backfill(backfill, timeout=600) == "COMPLETED_SUCCESS"
            backfill_ended = max(
                record.end_time
                for record in instance.get_run_records(
                    filters=dg.RunsFilter(tags={"dagster/backfill": backfill})
                )
            )
            # A whole tick of the sensor after the last backfill run ended: it has seen them all.
            tick = _tick_after(dagster, selector, backfill_ended, timeout=300)
            training_runs = instance.get_runs(filters=dg.RunsFilter(job_name="daily_training_job"))
            assert [run.run_id for run in training_runs] == [training_run.run_id], tick
    store = LocalObjectStore(root / "object-store")
    verdict = read_evaluation(store, newest.isoformat())
    assert verdict is not None and verdict["partition"] == newest.isoformat()
    # The guard of the newest day rolled the damaged model back, in the daily run, before the
    # day trained: the day's model started from, and was judged against, the good model.
    guard = read_verdict(store, newest.isoformat())
    assert guard["regressed"] is True and guard["run_id"] == training_run.run_id
    assert (guard["production"]["version"], guard["replaced"]["version"]) == (
        bad.version,
        good.version,
    )
    rollbacks = [m for m in registry.history(PRODUCTION) if m.kind == "rollback"]
    assert [(m.from_version, m.to_version, m.run_id) for m in rollbacks] == [
        (bad.version, good.version, training_run.run_id)
    ]
    assert bad.version in registry.read_alias(PRODUCTION).rolled_back
    assert registry.resolve(PRODUCTION).version != bad.version
    assert store.exists(marker_key(newest.isoformat(), "next_day_regression", ALERTS_PREFIX))
    assert verdict["production"]["version"] == good.version
    print(
        f"request -> evaluation end: {evaluated - requested:.1f} s; features run end -> training"
        f" run start: {training_start - features_end:.1f} s; candidate AUC "
        f"{verdict['scores']['candidate']['auc']:.4f}"
    )
