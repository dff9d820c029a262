"""The completeness sensor requests a day exactly once, and only when its data is all there."""

import datetime as dt

import dagster as dg
import pytest

from assets.partitions import daily_partitions, day_bounds
from contract.source import SOURCE
from resources.warehouse.backends import SqliteBackend, create_tables, set_watermark
from resources.warehouse.resource import Warehouse
from sensors.completeness import upstream_completeness_sensor
from sensors.schedules import DAILY_RUN_PRIORITY

SENSOR = upstream_completeness_sensor(dg.DefaultSensorStatus.STOPPED)


@pytest.fixture
def warehouse(tmp_path):
    backend = SqliteBackend(str(tmp_path / "warehouse.sqlite"))
    create_tables(backend)
    return backend


def _yesterday() -> dt.date:
    return dt.date.fromisoformat(daily_partitions.get_last_partition_key())


def _tick(backend, cursor=None):
    with dg.build_sensor_context(
        cursor=cursor, resources={"warehouse": Warehouse(sqlite_path=backend.path)}
    ) as context:
        return SENSOR(context)


def test_incomplete_day_is_skipped_with_the_reason(warehouse):
    yesterday = _yesterday()
    set_watermark(warehouse, day_bounds(yesterday)[0] + dt.timedelta(hours=18))
    result = _tick(warehouse)
    assert isinstance(result, dg.SkipReason)
    waiting = f"Waiting for upstream: {yesterday} needs the {SOURCE.table} watermark"
    assert waiting in result.skip_message
    assert "T18:00:00" in result.skip_message


def test_nothing_loaded_yet_is_skipped(warehouse):
    result = _tick(warehouse)
    assert isinstance(result, dg.SkipReason)
    assert "nothing loaded yet" in result.skip_message


def test_complete_day_is_requested_once_then_never_again(warehouse):
    yesterday = _yesterday()
    set_watermark(warehouse, day_bounds(yesterday)[1])
    result = _tick(warehouse)
    assert isinstance(result, dg.SensorResult)
    [request] = result.run_requests
    assert request.partition_key == yesterday.isoformat()
    assert request.tags["dagster/priority"] == DAILY_RUN_PRIORITY
    assert result.cursor == yesterday.isoformat()

    again = _tick(warehouse, cursor=result.cursor)
    assert isinstance(again, dg.SkipReason)
    assert f"through {yesterday}" in again.skip_message


def test_catch_up_requests_each_complete_day_in_order_up_to_the_watermark(warehouse):
    yesterday = _yesterday()
    # The sensor last requested 4 days ago; the upstream has finished all but yesterday.
    set_watermark(warehouse, day_bounds(yesterday)[0])
    result = _tick(warehouse, cursor=(yesterday - dt.timedelta(days=4)).isoformat())
    keys = [request.partition_key for request in result.run_requests]
    assert keys == [(yesterday - dt.timedelta(days=n)).isoformat() for n in (3, 2, 1)]
    assert result.cursor == keys[-1]
    assert len({request.run_key for request in result.run_requests}) == 3


@pytest.mark.parametrize("empty_cursor", [None, ""])
def test_an_empty_cursor_means_no_day_requested_yet(warehouse, empty_cursor):
    """The UI's "Preview tick result" passes an empty string where the daemon passes None."""
    yesterday = _yesterday()
    set_watermark(warehouse, day_bounds(yesterday)[1])
    result = _tick(warehouse, cursor=empty_cursor)
    assert [r.partition_key for r in result.run_requests] == [yesterday.isoformat()]
