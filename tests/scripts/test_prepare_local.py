"""`make dev`'s set-up seeds every partition, and only what is missing on the next start."""

import datetime as dt
import sqlite3

from assets.partitions import daily_partitions
from contract.source import SOURCE
from scripts import prepare_local


def _days(warehouse) -> list[str]:
    with sqlite3.connect(warehouse) as db:
        query = f"SELECT DISTINCT {SOURCE.date_column} FROM {SOURCE.table} ORDER BY 1"
        return [row[0] for row in db.execute(query)]


def test_the_seeded_warehouse_covers_every_partition(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LOCAL_DATA_DIR", str(tmp_path / "data"))
    assert prepare_local.main(["--impressions", "24"]) == 0
    days = _days(tmp_path / "data" / "warehouse.sqlite")
    assert days[0] == daily_partitions.get_first_partition_key()
    assert days[-1] == daily_partitions.get_last_partition_key()
    assert len(days) == len(daily_partitions.get_partition_keys())

    assert prepare_local.main(["--impressions", "24"]) == 0
    assert "0 events loaded now, from nothing: already up to date" in capsys.readouterr().out


def test_seeding_is_incremental_and_rebuilds_on_other_settings(tmp_path):
    warehouse = tmp_path / "warehouse.sqlite"
    first, last = dt.date(2026, 11, 1), dt.date(2026, 11, 3)
    rows, start = prepare_local.seed_incrementally(warehouse, first, last, impressions=30, seed=7)
    assert rows > 0 and start == first and len(_days(warehouse)) == 3

    # A day later: only the new day is generated.
    rows, start = prepare_local.seed_incrementally(
        warehouse, first, last + dt.timedelta(days=1), impressions=30, seed=7
    )
    assert start == last + dt.timedelta(days=1) and len(_days(warehouse)) == 4

    # Other settings: rebuilt from scratch over the asked range only.
    rows, start = prepare_local.seed_incrementally(warehouse, last, last, impressions=40, seed=7)
    assert start == last and _days(warehouse) == [last.isoformat()]
