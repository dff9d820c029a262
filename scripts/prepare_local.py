"""Prepare the embedded defaults: DAGSTER_HOME, a seeded SQLite warehouse, an object store.

The warehouse covers every daily partition (from the partitions' start date to yesterday), so
"Materialize all" or a backfill of "All" in the UI meets real data, never empty days. Seeding
is incremental: a warehouse seeded with the same settings only gets the days added since;
other settings (or a template change recorded in SEED_FORMAT) rebuild it from scratch.
Published objects are left alone. The generator makes the example's click stream only: once
`SOURCE` names a team's own table, the warehouse is left as it is and the team loads its data.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

from assets.partitions import daily_partitions
from contract.source import SOURCE, SourceContract
from resources.factory import local_paths
from resources.paths import PROJECT_ROOT
from resources.warehouse.backends import SqliteBackend
from scripts.synthetic_events import NotTheExampleSource, check_example_source, seed_warehouse

LOCAL_INSTANCE_CONFIG = PROJECT_ROOT / "deployments" / "local" / "dagster.yaml"
# Bump when the generator or the warehouse layout changes: existing warehouses are rebuilt.
SEED_FORMAT = 1


def prepare_dagster_home(dagster_home: Path) -> Path:
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    shutil.copyfile(LOCAL_INSTANCE_CONFIG, target)
    return target


def seed_incrementally(
    warehouse: Path,
    first_day: dt.date,
    last_day: dt.date,
    *,
    impressions: int,
    seed: int,
    contract: SourceContract = SOURCE,
) -> tuple[int, dt.date | None]:
    """Load the days of [first_day, last_day] the warehouse does not hold yet with these
    settings; returns the events loaded and the first day loaded (None: nothing to do).

    `NotTheExampleSource` when `contract` is not the example's, before the file is touched:
    a warehouse of another source holds the team's own data.
    """
    check_example_source(contract)
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
        SqliteBackend(str(warehouse), contract), start, last_day, impressions=impressions, seed=seed
    )
    record.write_text(json.dumps({**settings, "last_day": last_day.isoformat()}, indent=1))
    return rows, start


def main(argv: list[str] | None = None, source: SourceContract = SOURCE) -> int:
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
    print(f"instance config : {instance_config}")
    try:
        rows, seeded_from = seed_incrementally(
            paths.warehouse,
            first_day,
            last_day,
            impressions=args.impressions,
            seed=args.seed,
            contract=source,
        )
    except NotTheExampleSource as err:
        # The UI still starts: the team's own loader fills the warehouse, not this script.
        print(f"warehouse       : {paths.warehouse} left as it is, not seeded: {err}")
    else:
        print(
            f"warehouse       : {paths.warehouse} ({first_day} .. {last_day}; {rows} events "
            f"loaded now, from {seeded_from or 'nothing: already up to date'})"
        )
    print(f"object store    : {paths.object_store}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
