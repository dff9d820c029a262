"""The warehouse: deterministic synthetic events, identical rows from SQLite and Postgres."""

import datetime as dt

import pytest

from resources.event_schema import EVENTS_SCHEMA
from resources.synthetic_events import day_bounds, generate_events, seed_warehouse
from resources.warehouse import Warehouse
from resources.warehouse_backends import SqliteBackend, read_events, read_watermark
from tests.conftest import SEEDED_FIRST_DAY, SEEDED_LAST_DAY

DAY = dt.date(2026, 11, 3)


def test_generator_is_deterministic_per_seed_and_day():
    assert generate_events(DAY).equals(generate_events(DAY))
    assert not generate_events(DAY).equals(generate_events(DAY, seed=8))
    assert not generate_events(DAY).equals(generate_events(DAY + dt.timedelta(days=1)))


def test_generated_day_is_realistic_and_complete():
    events = generate_events(DAY, impressions=500)
    assert events.schema == EVENTS_SCHEMA
    start, end = day_bounds(DAY)
    times = events.column("event_time").to_pylist()
    assert min(times) >= start and max(times) < end
    assert {t.hour for t in times} == set(range(24))
    assert set(events.column("event_type").to_pylist()) >= {"impression", "click"}
    assert len(events.column("event_id").unique()) == events.num_rows


def test_sqlite_returns_the_generated_rows_and_watermark(seeded_sqlite):
    backend = SqliteBackend(str(seeded_sqlite))
    assert read_events(backend, *day_bounds(DAY)).equals(generate_events(DAY))
    assert read_watermark(backend) == day_bounds(SEEDED_LAST_DAY)[1]


def test_reseeding_is_idempotent(tmp_path):
    backend = SqliteBackend(str(tmp_path / "w.sqlite"))
    seed_warehouse(backend, DAY, DAY, impressions=100)
    seed_warehouse(backend, DAY, DAY, impressions=100)
    assert read_events(backend, *day_bounds(DAY)).num_rows == generate_events(DAY, 100).num_rows


def test_window_bounds_are_half_open(seeded_sqlite):
    backend = SqliteBackend(str(seeded_sqlite))
    start, _ = day_bounds(DAY)
    two_days = read_events(backend, start, start + dt.timedelta(days=2))
    first = read_events(backend, start, start + dt.timedelta(days=1))
    second = read_events(backend, start + dt.timedelta(days=1), start + dt.timedelta(days=2))
    assert two_days.num_rows == first.num_rows + second.num_rows


def test_naive_timestamps_are_refused(seeded_sqlite):
    with pytest.raises(ValueError, match="no time zone"):
        read_events(
            SqliteBackend(str(seeded_sqlite)), dt.datetime(2026, 11, 3), dt.datetime(2026, 11, 4)
        )


@pytest.mark.postgres
def test_postgres_and_sqlite_return_identical_tables(postgres_backend, seeded_sqlite):
    seed_warehouse(postgres_backend, SEEDED_FIRST_DAY, SEEDED_LAST_DAY)
    sqlite = SqliteBackend(str(seeded_sqlite))
    start, _ = day_bounds(SEEDED_FIRST_DAY)
    _, end = day_bounds(SEEDED_LAST_DAY)
    from_postgres = read_events(postgres_backend, start, end)
    assert from_postgres.num_rows > 0
    assert from_postgres.equals(read_events(sqlite, start, end))
    assert read_watermark(postgres_backend) == read_watermark(sqlite)


@pytest.mark.postgres
def test_warehouse_resource_reads_postgres(postgres_backend):
    seed_warehouse(postgres_backend, DAY, DAY, impressions=100)
    warehouse = Warehouse(
        backend="postgres",
        postgres_dsn=postgres_backend.dsn,
        postgres_schema=postgres_backend.schema,
    )
    assert warehouse.read_events(*day_bounds(DAY)).equals(generate_events(DAY, 100))
    assert warehouse.read_watermark() == day_bounds(DAY)[1]
