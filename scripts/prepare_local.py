"""Prepare the embedded defaults: DAGSTER_HOME, a seeded SQLite warehouse, an object store.

Idempotent: the synthetic warehouse is rebuilt from scratch with the same days (so a schema
change of the template never meets an old file), and published objects are left alone.
"""

import argparse
import datetime as dt
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


def prepare_dagster_home(dagster_home: Path) -> Path:
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    shutil.copyfile(LOCAL_INSTANCE_CONFIG, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=14, help="recent days of events to load")
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
    paths.warehouse.unlink(missing_ok=True)
    last_day = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
    first_day = last_day - dt.timedelta(days=args.days - 1)
    rows = seed_warehouse(
        SqliteBackend(str(paths.warehouse)),
        first_day,
        last_day,
        impressions=args.impressions,
        seed=args.seed,
    )
    print(f"instance config : {instance_config}")
    print(f"warehouse       : {paths.warehouse} ({rows} events, {first_day} .. {last_day})")
    print(f"object store    : {paths.object_store}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
