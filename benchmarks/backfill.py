"""A year of feature partitions backfilled through the real daemon and run queue, against the
same computation done in one plain process.

Starts dagster-webserver and dagster-daemon on a throwaway embedded instance (the project's
deployments/local/dagster.yaml), launches one asset backfill of the events snapshot and the
three feature tables over --days partitions with the UI's GraphQL mutation, and waits for it.
The baseline runs the same functions over the same days in this process (see
benchmarks/features.py).

    python -m benchmarks.backfill --days 365 --impressions 200

Prints the backfill's wall time, its number of runs, the per-partition overhead and, as the
last line, `ratio=<backfill wall / bare wall>`.
"""

import argparse
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg

from assets.features.logic import FEATURE_TABLES
from assets.partitions import daily_partitions
from benchmarks.features import run_bare
from resources.factory import build_resources
from resources.warehouse.backends import SqliteBackend
from scripts.dagster_processes import DagsterProcesses, embedded_home
from scripts.synthetic_events import seed_warehouse

ASSETS = ["daily_events", *(table.name for table in FEATURE_TABLES)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--impressions", type=int, default=200, help="impressions per day")
    args = parser.parse_args(argv)

    last = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
    days = [(last - dt.timedelta(days=n)).isoformat() for n in reversed(range(args.days))]
    with tempfile.TemporaryDirectory() as tmp:
        orchestrated, bare = Path(tmp, "orchestrated"), Path(tmp, "bare")
        orchestrated.mkdir()
        seed_warehouse(
            SqliteBackend(str(orchestrated / "warehouse.sqlite")),
            dt.date.fromisoformat(days[0]),
            last,
            impressions=args.impressions,
        )
        shutil.copytree(orchestrated, bare)

        bare_wall = run_bare(build_resources("local", local_root=bare), days)

        home = embedded_home(Path(tmp, "dagster_home"))
        env = {"LOCAL_DATA_DIR": str(orchestrated), "DAGSTER_DEPLOYMENT": "local"}
        with DagsterProcesses(home, env, log_dir=Path(tmp)) as dagster:
            started = time.perf_counter()
            backfill_id = dagster.launch_asset_backfill(ASSETS, days)
            status = dagster.wait_for_backfill(backfill_id, timeout=3600)
            backfill_wall = time.perf_counter() - started
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))

    print(f"days={args.days} impressions_per_day={args.impressions} assets={len(ASSETS)}")
    print(f"backfill_status={status} runs={len(runs)}")
    print(f"backfill_wall_s={backfill_wall:.1f} bare_wall_s={bare_wall:.1f}")
    print(f"overhead_s_per_partition={(backfill_wall - bare_wall) / args.days:.3f}")
    print(f"ratio={backfill_wall / bare_wall:.2f}")


if __name__ == "__main__":
    main()
