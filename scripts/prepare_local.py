"""Prepare the embedded defaults: DAGSTER_HOME, a seeded SQLite warehouse, an object store.

The warehouse covers every daily partition (from the partitions' start date to yesterday), so
"Materialize all" or a backfill of "All" in the UI meets real data, never empty days. Seeding
is incremental: a warehouse seeded with the same settings only gets the days added since;
other settings (or a template change recorded in SEED_FORMAT) rebuild it from scratch.
Published objects are left alone.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

from assets.partitions import daily_partitions
from resources.factory import local_paths
from resources.paths import PROJECT_ROOT
from resources.warehouse.backends import SqliteBackend
from scripts.synthetic_events import seed_warehouse

LOCAL_INSTANCE_CONFIG = PROJECT_ROOT / "deployments" / "local" / "dagster.yaml"
# Bump when the generator or the warehouse layout changes: existing warehouses are rebuilt.
SEED_FORMAT = 1


def prepare_dagster_home(dagster_home: Path) -> Path:
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    shutil.copyfile(LOCAL_INSTANCE_CONFIG, target)
    return target


def seed_incrementally(
    warehouse: Path, first_day: dt.date, last_day: dt.date, *, impressions: int, seed: int
) -> tuple[int, dt.date | None]:
    """Load the days of [first_day, last_day] the warehouse does not hold yet with these
    settings; returns the events loaded and the first day loaded (None: nothing to do)."""
    record = warehouse.with_name(warehouse.name + ".seed.json")
    settings = {
        "format": SEED_FORMAT,
        "impressions": impressions,
        "seed": seed,
        "first_day": first_day.isoformat(),
    }
    seeded = json.loads(record.read_text()) if record.exists() and warehouse.exists() else {}
    if {k: seeded.get(k) for k in settings} == settings:
        start = dt.date.fromisoformat(seeded["last_day"]) + dt.timedelta(days=1)
    else:
        warehouse.unlink(missing_ok=True)
        start = first_day
    if start > last_day:
        return 0, None
    rows = seed_warehouse(
        SqliteBackend(str(warehouse)), start, last_day, impressions=impressions, seed=seed
    )
    record.write_text(json.dumps({**settings, "last_day": last_day.isoformat()}, indent=1))
    return rows, start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--days",
        type=int,
        default=None,
        help="load only this many recent days (default: every partition, from its start date)",
    )
    parser.add_argument("--impressions", type=int, default=2000, help="impressions per day")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    dagster_home = os.environ.get("DAGSTER_HOME")
    if not dagster_home:
        print(
            "DAGSTER_HOME is not set; run this through `make dev` or `make demo`.", file=sys.stderr
        )
        return 2
    instance_config = prepare_dagster_home(Path(dagster_home))

    paths = local_paths()
    paths.object_store.mkdir(parents=True, exist_ok=True)
    last_day = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
    first_day = (
        last_day - dt.timedelta(days=args.days - 1)
        if args.days
        else dt.date.fromisoformat(daily_partitions.get_first_partition_key())
    )
    rows, seeded_from = seed_incrementally(
        paths.warehouse, first_day, last_day, impressions=args.impressions, seed=args.seed
    )
    print(f"instance config : {instance_config}")
    print(
        f"warehouse       : {paths.warehouse} ({first_day} .. {last_day}; {rows} events "
        f"loaded now, from {seeded_from or 'nothing: already up to date'})"
    )
    print(f"object store    : {paths.object_store}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
