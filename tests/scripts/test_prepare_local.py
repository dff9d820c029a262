"""`make dev`'s set-up seeds every partition of the example's click stream, and only what is
missing on the next start; a project whose source is its own gets its warehouse left alone."""

import datetime as dt
import sqlite3

from assets.partitions import daily_partitions
from contract.source import CLICK_STREAM
from scripts import prepare_local
from tests.adapt.page_views import PAGE_VIEWS


def _days(warehouse) -> list[str]:
    with sqlite3.connect(warehouse) as db:
        query = f"SELECT DISTINCT {CLICK_STREAM.date_column} FROM {CLICK_STREAM.table} ORDER BY 1"
        return [row[0] for row in db.execute(query)]


def test_the_seeded_warehouse_covers_every_partition(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LOCAL_DATA_DIR", str(tmp_path / "data"))
    assert prepare_local.main(["--impressions", "24"], source=CLICK_STREAM) == 0
    days = _days(tmp_path / "data" / "warehouse.sqlite")
    assert days[0] == daily_partitions.get_first_partition_key()
    assert days[-1] == daily_partitions.get_last_partition_key()
    assert len(days) == len(daily_partitions.get_partition_keys())

    assert prepare_local.main(["--impressions", "24"], source=CLICK_STREAM) == 0
    assert "0 events loaded now, from nothing: already up to date" in capsys.readouterr().out


def test_seeding_is_incremental_and_rebuilds_on_other_settings(tmp_path):
    warehouse = tmp_path / "warehouse.sqlite"
    first, last = dt.date(2026, 11, 1), dt.date(2026, 11, 3)
    rows, start = prepare_local.seed_incrementally(
        warehouse, first, last, impressions=30, seed=7, contract=CLICK_STREAM
    )
    assert rows > 0 and start == first and len(_days(warehouse)) == 3

    # A day later: only the new day is generated.
    rows, start = prepare_local.seed_incrementally(
        warehouse, first, last + dt.timedelta(days=1), impressions=30, seed=7, contract=CLICK_STREAM
    )
    assert start == last + dt.timedelta(days=1) and len(_days(warehouse)) == 4

    # Other settings: rebuilt from scratch over the asked range only.
    rows, start = prepare_local.seed_incrementally(
        warehouse, last, last, impressions=40, seed=7, contract=CLICK_STREAM
    )
    assert start == last and _days(warehouse) == [last.isoformat()]


def test_a_project_with_its_own_source_is_told_the_generator_cannot_seed_it(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LOCAL_DATA_DIR", str(tmp_path / "data"))
    warehouse = tmp_path / "data" / "warehouse.sqlite"
    warehouse.parent.mkdir()
    warehouse.write_bytes(b"the team's own data")
    # The UI still starts (exit 0); the team's warehouse is neither replaced nor seeded.
    assert prepare_local.main(["--impressions", "24"], source=PAGE_VIEWS) == 0
    out = capsys.readouterr().out
    assert "not seeded" in out and CLICK_STREAM.table in out and PAGE_VIEWS.table in out
    assert "seed your own source's data" in out
    assert warehouse.read_bytes() == b"the team's own data"
    assert (tmp_path / "home" / "dagster.yaml").exists()
