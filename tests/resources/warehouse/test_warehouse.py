"""The warehouse: deterministic synthetic events, identical rows from SQLite and Postgres."""

import datetime as dt

import pytest

from assets.partitions import day_bounds
from contract.source import CLICK_STREAM
from resources.warehouse.backends import (
    SqliteBackend,
    normalize_events,
    read_day_raw,
    read_watermark,
    set_watermark,
)
from resources.warehouse.resource import Warehouse
from scripts.synthetic_events import NotTheExampleSource, generate_events, seed_warehouse
from tests.adapt.page_views import PAGE_VIEWS
from tests.support.environment import SEEDED_FIRST_DAY, SEEDED_LAST_DAY
from tests.support.example import example_sqlite

DAY = dt.date(2026, 11, 3)


def test_generator_is_deterministic_per_seed_and_day():
    assert generate_events(DAY).equals(generate_events(DAY))
    assert not generate_events(DAY).equals(generate_events(DAY, seed=8))
    assert not generate_events(DAY).equals(generate_events(DAY + dt.timedelta(days=1)))


def test_generated_day_is_realistic_and_complete():
    events = generate_events(DAY, impressions=500)
    assert events.schema == CLICK_STREAM.schema
    start, end = day_bounds(DAY)
    times = events.column("event_time").to_pylist()
    assert min(times) >= start and max(times) < end
    assert {t.hour for t in times} == set(range(24))
    assert set(events.column("event_type").to_pylist()) >= {"impression", "click"}
    assert len(events.column("event_id").unique()) == events.num_rows


def test_sqlite_returns_the_generated_rows_and_watermark(seeded_sqlite):
    backend = example_sqlite(str(seeded_sqlite))
    assert normalize_events(read_day_raw(backend, DAY), CLICK_STREAM).equals(generate_events(DAY))
    assert read_watermark(backend) == day_bounds(SEEDED_LAST_DAY)[1]


def test_reseeding_is_idempotent(tmp_path):
    backend = example_sqlite(str(tmp_path / "w.sqlite"))
    seed_warehouse(backend, DAY, DAY, impressions=100)
    seed_warehouse(backend, DAY, DAY, impressions=100)
    assert read_day_raw(backend, DAY).num_rows == generate_events(DAY, 100).num_rows


def test_seeding_refuses_a_warehouse_declared_for_another_source(tmp_path):
    """The generator makes the click stream only: a team's own source is not filled with it."""
    path = tmp_path / "w.sqlite"
    with pytest.raises(NotTheExampleSource) as refused:
        seed_warehouse(SqliteBackend(str(path), PAGE_VIEWS), DAY, DAY, impressions=100)
    message = str(refused.value)
    assert CLICK_STREAM.table in message and PAGE_VIEWS.table in message
    assert "seed your own source's data" in message
    assert not path.exists()


def test_raw_read_returns_the_backend_schema_and_only_that_day(seeded_sqlite):
    backend = example_sqlite(str(seeded_sqlite))
    raw = read_day_raw(backend, DAY)
    assert [(f.name, f.type) for f in raw.schema] == [
        (f.name, f.type) for f in backend.raw_schema()
    ]
    assert set(raw.column("event_date").to_pylist()) == {DAY.isoformat()}
    assert read_day_raw(backend, SEEDED_LAST_DAY + dt.timedelta(days=1)).num_rows == 0


def test_naive_timestamps_are_refused(tmp_path):
    backend = example_sqlite(str(tmp_path / "w.sqlite"))
    seed_warehouse(backend, DAY, DAY, impressions=100)
    with pytest.raises(ValueError, match="no time zone"):
        set_watermark(backend, dt.datetime(2026, 11, 4))


@pytest.mark.postgres
def test_postgres_and_sqlite_return_identical_tables(postgres_backend, seeded_sqlite):
    seed_warehouse(postgres_backend, SEEDED_FIRST_DAY, SEEDED_LAST_DAY)
    sqlite = example_sqlite(str(seeded_sqlite))
    day = SEEDED_FIRST_DAY
    while day <= SEEDED_LAST_DAY:
        from_postgres = normalize_events(read_day_raw(postgres_backend, day), CLICK_STREAM)
        assert from_postgres.num_rows > 0
        assert from_postgres.equals(normalize_events(read_day_raw(sqlite, day), CLICK_STREAM))
        day += dt.timedelta(days=1)
    assert read_watermark(postgres_backend) == read_watermark(sqlite)
    assert [(f.name, f.type) for f in read_day_raw(postgres_backend, SEEDED_FIRST_DAY).schema] == [
        (f.name, f.type) for f in postgres_backend.raw_schema()
    ]


@pytest.mark.postgres
def test_warehouse_resource_reads_postgres(postgres_backend):
    seed_warehouse(postgres_backend, DAY, DAY, impressions=100)
    warehouse = Warehouse(
        backend="postgres",
        postgres_dsn=postgres_backend.dsn,
        postgres_schema=postgres_backend.schema,
    )
    assert normalize_events(warehouse.read_day_raw(DAY, CLICK_STREAM), CLICK_STREAM).equals(
        generate_events(DAY, 100)
    )
    assert warehouse.read_watermark(CLICK_STREAM) == day_bounds(DAY)[1]
