"""A year of feature partitions backfilled through the real daemon and run queue, against the
same computation done in one plain process.

Starts dagster-webserver and dagster-daemon on a throwaway embedded instance (the project's
deployments/local/dagster.yaml), launches one asset backfill of the events snapshot and the
three feature tables over --days partitions with the UI's GraphQL mutation, and waits for it.
The baseline runs the same functions over the same days in this process (see
benchmarks/features.py).

    python -m benchmarks.backfill --days 365 --impressions 200 [--scaling] [--daily]

Prints the backfill's wall time, its number of runs, the per-partition overhead and, as the
last line, `ratio=<backfill wall / bare wall>` for --days. With --scaling it first measures 30,
90 and 365 days too and prints a table of wall, runs and ratio for each. The backfill's wall
runs from the GraphQL launch to the daemon marking the backfill complete, as a user waits.

With --daily, once the backfill's runs are under way the daily features schedule's tick is fired
(as the UI's "Test schedule" does) and the daily run's wait in the run queue under that load is
printed: `daily_dequeue_s` (RUN_ENQUEUED to RUN_STARTING) and `daily_dequeue_passes` (the run
coordinator's passes over the queue meanwhile, from the daemon's log). The tests assert the
order and the passes; the seconds are this figure. The daily run shares the machine with the
backfill, so the backfill's wall includes it.
"""

import argparse
import datetime as dt
import shutil
import tempfile
import time
from dataclasses import dataclass
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
# --scaling: how the cost grows with the work (plus --days itself).
SCALING_DAYS = (30, 90, 365)


@dataclass(frozen=True)
class Measurement:
    days: int
    runs: int
    status: str
    backfill_wall_s: float
    bare_wall_s: float
    # Where the backfill's wall went, from the run records: launch to the first run's start
    # (the backfill daemon's pick-up, run creation, queue, run worker start), the span from the
    # first start to the last end, and the last end to the daemon marking the backfill done.
    to_first_start_s: float
    runs_span_s: float
    after_last_end_s: float
    # Summed over the runs: their durations, and their event-log entries.
    run_seconds: float
    events: int
    # With --daily: the daily run's RUN_ENQUEUED to RUN_STARTING, and the coordinator's passes.
    daily_dequeue_s: float | None = None
    daily_dequeue_passes: int | None = None

    @property
    def ratio(self) -> float:
        return self.backfill_wall_s / self.bare_wall_s


def _event_time(instance, run_id: str, event_type: dg.DagsterEventType) -> float:
    [entry] = instance.all_logs(run_id, of_type=event_type)
    return entry.timestamp


def _daily_under_load(dagster, home: Path, backfill_id: str, last: str) -> tuple[float, int]:
    """Fire the daily features tick once the backfill's runs are in progress; the daily run's
    seconds in the queue and the coordinator's passes meanwhile."""
    in_progress = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        deadline = time.monotonic() + 600
        while not instance.get_runs(
            filters=dg.RunsFilter(statuses=in_progress, tags={"dagster/backfill": backfill_id})
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no run of backfill {backfill_id} started:\n{dagster.logs()}")
            time.sleep(0.5)
        tick = dt.datetime.combine(
            dt.date.fromisoformat(last) + dt.timedelta(days=1), dt.time(6), dt.UTC
        )
        run_id = dagster.fire_schedule_tick(
            "daily_features_schedule", "daily_features_job", tick.timestamp()
        )
        while instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.QUEUED:
            if time.monotonic() > deadline:
                raise TimeoutError(f"daily run {run_id} still queued:\n{dagster.logs()}")
            time.sleep(0.5)
        enqueued = _event_time(instance, run_id, dg.DagsterEventType.RUN_ENQUEUED)
        dequeued = _event_time(instance, run_id, dg.DagsterEventType.RUN_STARTING)
    return dequeued - enqueued, dagster.coordinator_iterations(after=enqueued, until=dequeued)


def measure(days_back: int, impressions: int, daily: bool = False) -> Measurement:
    """One backfill of `days_back` days through the daemon, and the bare loop over them (with
    the daily run fired under the backfill's load when `daily`)."""
    last = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
    days = [(last - dt.timedelta(days=n)).isoformat() for n in reversed(range(days_back))]
    with tempfile.TemporaryDirectory() as tmp:
        orchestrated, bare = Path(tmp, "orchestrated"), Path(tmp, "bare")
        orchestrated.mkdir()
        seed_warehouse(
            SqliteBackend(str(orchestrated / "warehouse.sqlite")),
            dt.date.fromisoformat(days[0]),
            last,
            impressions=impressions,
        )
        shutil.copytree(orchestrated, bare)

        bare_wall = run_bare(build_resources("local", local_root=bare), days)

        home = embedded_home(Path(tmp, "dagster_home"))
        env = {"LOCAL_DATA_DIR": str(orchestrated), "DAGSTER_DEPLOYMENT": "local"}
        with DagsterProcesses(home, env, log_dir=Path(tmp)) as dagster:
            launched_at, started = time.time(), time.perf_counter()
            backfill_id = dagster.launch_asset_backfill(ASSETS, days)
            dequeue = (
                _daily_under_load(dagster, home, backfill_id, days[-1]) if daily else (None, None)
            )
            status = dagster.wait_for_backfill(backfill_id, timeout=3600)
            backfill_wall = time.perf_counter() - started
        with dg.DagsterInstance.from_config(str(home)) as instance:
            records = instance.get_run_records(
                filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id})
            )
            events = sum(
                len(instance.get_records_for_run(r.dagster_run.run_id, limit=1_000_000).records)
                for r in records
            )
    first_start = min(r.start_time for r in records)
    last_end = max(r.end_time for r in records)
    return Measurement(
        days=days_back,
        runs=len(records),
        status=status,
        backfill_wall_s=backfill_wall,
        bare_wall_s=bare_wall,
        to_first_start_s=first_start - launched_at,
        runs_span_s=last_end - first_start,
        after_last_end_s=launched_at + backfill_wall - last_end,
        run_seconds=sum(r.end_time - r.start_time for r in records),
        events=events,
        daily_dequeue_s=dequeue[0],
        daily_dequeue_passes=dequeue[1],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--impressions", type=int, default=200, help="impressions per day")
    parser.add_argument(
        "--scaling",
        action="store_true",
        help=f"measure {', '.join(map(str, SCALING_DAYS))} days as well and print a table",
    )
    parser.add_argument(
        "--daily",
        action="store_true",
        help="fire the daily features tick under the backfill's load; print its queue wait",
    )
    args = parser.parse_args(argv)

    sizes = sorted({*SCALING_DAYS, args.days}) if args.scaling else [args.days]
    results = [measure(days, args.impressions, daily=args.daily) for days in sizes]
    if args.scaling:
        print("days  runs  backfill_wall_s  bare_wall_s  overhead_s_per_partition  ratio")
        for m in results:
            overhead = (m.backfill_wall_s - m.bare_wall_s) / m.days
            print(
                f"{m.days:>4}  {m.runs:>4}  {m.backfill_wall_s:>15.1f}  {m.bare_wall_s:>11.1f}"
                f"  {overhead:>24.3f}  {m.ratio:>5.2f}"
            )
    m = next(m for m in results if m.days == args.days)
    print(f"days={m.days} impressions_per_day={args.impressions} assets={len(ASSETS)}")
    print(f"backfill_status={m.status} runs={m.runs} events={m.events}")
    print(
        f"launch_to_first_run_start_s={m.to_first_start_s:.1f} runs_span_s={m.runs_span_s:.1f} "
        f"last_run_end_to_complete_s={m.after_last_end_s:.1f} summed_run_s={m.run_seconds:.1f}"
    )
    print(f"backfill_wall_s={m.backfill_wall_s:.1f} bare_wall_s={m.bare_wall_s:.1f}")
    if m.daily_dequeue_s is not None:
        print(
            f"daily_dequeue_s={m.daily_dequeue_s:.2f} daily_dequeue_passes={m.daily_dequeue_passes}"
        )
    print(f"overhead_s_per_partition={(m.backfill_wall_s - m.bare_wall_s) / m.days:.3f}")
    print(f"ratio={m.ratio:.2f}")


if __name__ == "__main__":
    main()
