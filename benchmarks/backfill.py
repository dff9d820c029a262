"""A year of feature partitions backfilled through the real daemon and run queue, against the
same computation done in one plain process.

Starts dagster-webserver and dagster-daemon on a throwaway embedded instance (the project's
deployments/local/dagster.yaml), launches one asset backfill of the events snapshot and the
three feature tables over --days partitions with the UI's GraphQL mutation, and waits for it.
The baseline runs the same functions over the same days in this process (see
benchmarks/features.py).

    python -m benchmarks.backfill [--days 7] [--impressions 1000000] [--scaling 100000,1000000]
        [--scaling-days 2] [--daily]

Prints the backfill's wall time, its number of runs, its fixed costs apart (launch to the first
run's start, the last run's end to the backfill's completion), the per-partition overhead, the
peak RSS of the backfill's run workers and of the bare loop (a child process of its own), and,
as the last line, `ratio=<backfill wall / bare wall>` for --days. --scaling first measures
each size in events a day (--scaling-days days each) and prints a table of wall, events/s and
peak RSS per size. The backfill's wall runs from the GraphQL launch to the daemon marking the
backfill complete, as a user waits. A run worker is a process started under the webserver or
the daemon after the launch; its peak is its VmHWM as last sampled (every 0.2 s) before it
exits.

With --daily, once the backfill's runs are under way the daily features schedule's tick is fired
(as the UI's "Test schedule" does) and the daily run's wait in the run queue under that load is
printed: `daily_dequeue_s` (RUN_ENQUEUED to RUN_STARTING) and `daily_dequeue_passes` (the run
coordinator's passes over the queue meanwhile, from the daemon's log). The tests assert the
order and the passes; the seconds are this figure. The daily run shares the machine with the
backfill, so the backfill's wall includes it.
"""

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from assets.features.logic import FEATURE_TABLES
from assets.partitions import daily_partitions
from benchmarks.features import EVENTS_PER_IMPRESSION, peak_rss_mib, run_bare
from resources.factory import build_resources
from resources.warehouse.backends import SqliteBackend
from scripts.dagster_processes import DagsterProcesses, embedded_home
from scripts.synthetic_events import seed_warehouse

ASSETS = ["daily_events", *(table.name for table in FEATURE_TABLES)]


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
    # Source events over all the days, and the peak RSS of the largest run worker and of the
    # bare loop's process.
    source_events: int
    run_worker_peak_mib: float
    bare_peak_mib: float
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


class RunWorkerPeaks:
    """The peak RSS of each process started under `roots` (the webserver and the daemon) after
    entering: the backfill's run workers (the code server's children), sampled until exit."""

    def __init__(self, roots: list[int], interval: float = 0.2):
        self.peaks: dict[int, float] = {}
        self._roots, self._interval, self._stop = roots, interval, threading.Event()
        self._before: set[int] = set()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _parents() -> dict[int, int]:
        parents = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:  # it exited between the listing and the read
                    continue
                parents[int(entry.name)] = int(fields[1])
        return parents

    def _descendants(self) -> set[int]:
        parents, found = self._parents(), set(self._roots)
        while True:
            more = {pid for pid, parent in parents.items() if parent in found} - found
            if not more:
                return found - set(self._roots)
            found |= more

    @staticmethod
    def _peak(pid: int) -> float | None:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            for pid in self._descendants() - self._before:
                peak = self._peak(pid)
                if peak is not None:
                    self.peaks[pid] = max(peak, self.peaks.get(pid, 0.0))

    def __enter__(self) -> "RunWorkerPeaks":
        self._before = self._descendants()
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()


def bare_child(root: Path, days: list[str]) -> None:
    """The bare loop over `days` in this process: prints {"wall_s", "peak_rss_mib"}."""
    wall = run_bare(build_resources("local", local_root=root), days)
    print(json.dumps({"wall_s": wall, "peak_rss_mib": peak_rss_mib()}))


def measure_bare(root: Path, days: list[str]) -> dict:
    """The bare loop in a child process of its own, so its peak memory is its own."""
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.backfill", "--bare-child", str(root), *days],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure(days_back: int, impressions: int, daily: bool = False) -> Measurement:
    """One backfill of `days_back` days through the daemon, and the bare loop over them (with
    the daily run fired under the backfill's load when `daily`)."""
    last = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
    days = [(last - dt.timedelta(days=n)).isoformat() for n in reversed(range(days_back))]
    with tempfile.TemporaryDirectory() as tmp:
        orchestrated, bare = Path(tmp, "orchestrated"), Path(tmp, "bare")
        orchestrated.mkdir()
        warehouse = SqliteBackend(str(orchestrated / "warehouse.sqlite"))
        seed_warehouse(warehouse, dt.date.fromisoformat(days[0]), last, impressions=impressions)
        shutil.copytree(orchestrated, bare)

        bare_run = measure_bare(bare, days)

        home = embedded_home(Path(tmp, "dagster_home"))
        env = {"LOCAL_DATA_DIR": str(orchestrated), "DAGSTER_DEPLOYMENT": "local"}
        with (
            DagsterProcesses(home, env, log_dir=Path(tmp)) as dagster,
            RunWorkerPeaks([process.pid for process in dagster.processes]) as workers,
        ):
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
            # The newest materialization of each day (a retried day has more than one).
            newest: dict[str, int] = {}
            for record in instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("daily_events"), asset_partitions=days),
                limit=10 * len(days),
            ).records:
                newest.setdefault(
                    record.partition_key,
                    record.asset_materialization.metadata["source_rows"].value,
                )
            source_events = sum(newest.values())
    first_start = min(r.start_time for r in records)
    last_end = max(r.end_time for r in records)
    return Measurement(
        days=days_back,
        runs=len(records),
        status=status,
        backfill_wall_s=backfill_wall,
        bare_wall_s=bare_run["wall_s"],
        to_first_start_s=first_start - launched_at,
        runs_span_s=last_end - first_start,
        after_last_end_s=launched_at + backfill_wall - last_end,
        run_seconds=sum(r.end_time - r.start_time for r in records),
        events=events,
        source_events=source_events,
        run_worker_peak_mib=max(workers.peaks.values(), default=0.0),
        bare_peak_mib=bare_run["peak_rss_mib"],
        daily_dequeue_s=dequeue[0],
        daily_dequeue_passes=dequeue[1],
    )


def main(argv: list[str] | None = None) -> None:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--bare-child":
        bare_child(Path(sys.argv[2]), sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--impressions", type=int, default=1_000_000, help="impressions per day")
    parser.add_argument(
        "--scaling", default="", help="comma-separated events a day for the scaling table"
    )
    parser.add_argument("--scaling-days", type=int, default=2, help="days of each scaling row")
    parser.add_argument(
        "--daily",
        action="store_true",
        help="fire the daily features tick under the backfill's load; print its queue wait",
    )
    args = parser.parse_args(argv)

    if args.scaling:
        print(
            "events/day  days  runs  backfill_wall_s  bare_wall_s  events/s  worker_peak_mib  "
            "bare_peak_mib  fixed_s  ratio"
        )
        for events_per_day in (int(size) for size in args.scaling.split(",")):
            impressions = max(24, round(events_per_day / EVENTS_PER_IMPRESSION))
            row = measure(args.scaling_days, impressions)
            print(
                f"{events_per_day:>10}  {row.days:>4}  {row.runs:>4}  {row.backfill_wall_s:>15.1f}"
                f"  {row.bare_wall_s:>11.1f}  {row.source_events / row.backfill_wall_s:>8.0f}"
                f"  {row.run_worker_peak_mib:>15.0f}  {row.bare_peak_mib:>13.0f}"
                f"  {row.to_first_start_s + row.after_last_end_s:>7.1f}  {row.ratio:>5.2f}"
            )
    m = measure(args.days, args.impressions, daily=args.daily)
    print(
        f"days={m.days} impressions_per_day={args.impressions} source_events={m.source_events} "
        f"assets={len(ASSETS)}"
    )
    print(f"backfill_status={m.status} runs={m.runs} events={m.events}")
    print(
        f"fixed: launch_to_first_run_start_s={m.to_first_start_s:.1f} "
        f"last_run_end_to_complete_s={m.after_last_end_s:.1f}; runs_span_s={m.runs_span_s:.1f} "
        f"summed_run_s={m.run_seconds:.1f}"
    )
    print(f"backfill_wall_s={m.backfill_wall_s:.1f} bare_wall_s={m.bare_wall_s:.1f}")
    print(
        f"run_worker_peak_rss_mib={m.run_worker_peak_mib:.0f} "
        f"bare_peak_rss_mib={m.bare_peak_mib:.0f}"
    )
    if m.daily_dequeue_s is not None:
        print(
            f"daily_dequeue_s={m.daily_dequeue_s:.2f} daily_dequeue_passes={m.daily_dequeue_passes}"
        )
    print(f"overhead_s_per_partition={(m.backfill_wall_s - m.bare_wall_s) / m.days:.3f}")
    print(f"ratio={m.ratio:.2f}")


if __name__ == "__main__":
    main()
