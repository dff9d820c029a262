"""The sensors that request daily runs stamp each request with their tick's time, which is
where the run's schedule-to-start begins."""

import datetime as dt

import dagster as dg

from assets.partitions import daily_partitions, day_bounds, training_partitions
from assets.slo.tags import REQUESTED_AT_TAG
from resources.warehouse.backends import SqliteBackend, create_tables, set_watermark
from resources.warehouse.resource import Warehouse
from sensors.completeness import upstream_completeness_sensor
from sensors.schedules import DAILY_RUN_TAGS
from sensors.training_trigger import training_request


def _stamp(request: dg.RunRequest) -> dt.datetime:
    return dt.datetime.fromisoformat(request.tags[REQUESTED_AT_TAG])


def test_the_completeness_sensor_stamps_its_requests_with_the_tick(tmp_path):
    backend = SqliteBackend(str(tmp_path / "warehouse.sqlite"))
    create_tables(backend)
    newest = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
    set_watermark(backend, day_bounds(newest)[1])
    sensor = upstream_completeness_sensor(dg.DefaultSensorStatus.STOPPED)
    before = dt.datetime.now(dt.UTC)
    with dg.build_sensor_context(
        cursor=(newest - dt.timedelta(days=2)).isoformat(),
        resources={"warehouse": Warehouse(sqlite_path=backend.path)},
    ) as context:
        result = sensor(context)
    after = dt.datetime.now(dt.UTC)
    assert len(result.run_requests) == 2
    # One tick, one time for every day it requests.
    assert len({_stamp(request) for request in result.run_requests}) == 1
    assert before <= _stamp(result.run_requests[0]) <= after


def test_the_training_trigger_stamps_its_request():
    newest = training_partitions.get_last_partition_key()
    run = dg.DagsterRun(
        job_name="daily_features_job",
        run_id="run-1",
        tags={**DAILY_RUN_TAGS, "dagster/partition": newest},
    )
    before = dt.datetime.now(dt.UTC)
    request = training_request(run, newest)
    assert before <= _stamp(request) <= dt.datetime.now(dt.UTC)
