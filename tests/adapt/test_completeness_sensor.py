"""The completeness sensor built for the second schema reads that table's watermark row, in
that contract's watermarks table, and names the table while it waits."""

import datetime as dt

import dagster as dg

from assets.partitions import daily_partitions
from resources.warehouse.backends import SqliteBackend, create_tables, day_range, set_watermark
from resources.warehouse.resource import Warehouse
from sensors.completeness import upstream_completeness_sensor
from tests.adapt.page_views import PAGE_VIEWS

SENSOR = upstream_completeness_sensor(dg.DefaultSensorStatus.STOPPED, PAGE_VIEWS)


def _tick(backend: SqliteBackend):
    with dg.build_sensor_context(
        resources={"warehouse": Warehouse(sqlite_path=backend.path)}
    ) as context:
        return SENSOR(context)


def test_the_sensor_waits_for_and_then_requests_the_second_schemas_day(tmp_path):
    backend = SqliteBackend(str(tmp_path / "warehouse.sqlite"), PAGE_VIEWS)
    create_tables(backend)
    yesterday = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
    start, end = day_range(yesterday)
    set_watermark(backend, start + dt.timedelta(hours=18))
    waiting = _tick(backend)
    assert isinstance(waiting, dg.SkipReason)
    assert f"{yesterday} needs the {PAGE_VIEWS.table} watermark" in waiting.skip_message
    assert "T18:00:00" in waiting.skip_message

    set_watermark(backend, end)
    result = _tick(backend)
    assert isinstance(result, dg.SensorResult)
    assert [r.partition_key for r in result.run_requests] == [yesterday.isoformat()]
