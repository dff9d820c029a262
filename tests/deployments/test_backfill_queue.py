"""Backfills launched like the UI never starve the daily run (real daemon and webserver).

A 90-day feature backfill and two overlapping 30-day backfills take the backfill share of the
queue, with backfill runs still waiting behind it; then the daily schedule's tick is fired. The
daily run must leave the queue ahead of every backfill run that was waiting with it, on one of
the run coordinator's first two passes after it arrived (counted in the daemon's log, not timed:
a loaded machine makes each pass slower, not the queue unfair); in-progress backfill runs must
never exceed their limits, every partition must end materialized, and the overlapping days must
hold exactly the bytes a single run writes. Runs on the embedded SQLite instance, and on real
Postgres storage. How many seconds the daily run waits is measured by benchmarks/backfill.py.
"""

import datetime as dt
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
import yaml

from assets.features.assets import feature_assets
from assets.features.logic import FEATURE_TABLES
from assets.partitions import daily_partitions, partition_range_tags
from assets.publishing.gate_reports import PartitionNotPublished, read_published
from assets.publishing.parquet import from_parquet_bytes
from assets.sources.daily_events import daily_events
from resources.factory import build_resources
from resources.storage.object_store import LocalObjectStore
from resources.warehouse.backends import SqliteBackend
from scripts.dagster_processes import DagsterProcesses, embedded_home
from scripts.synthetic_events import seed_warehouse
from scripts.training_scenarios import wait_for
from tests.support.environment import POSTGRES_DSN
from tests.support.queue_policy import backfill_limits, policy_from_local

# Starts real processes (trainer, daemon/webserver, make): `make test-fast` skips it.
# Runs the project's definitions on the example's seeded data (fails saying so otherwise).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("example_project")]

FEATURE_ASSETS = ["daily_events", *(table.name for table in FEATURE_TABLES)]
IN_PROGRESS = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)
# The pass that was under way when the daily run arrived may have read the queue just before
# it; the next pass reads it. Two passes, however long each takes on a loaded machine.
MAX_COORDINATOR_PASSES = 2
# Bounds on waits for the daemon's work: only there so that a hung daemon fails the test
# instead of hanging it, generous enough for a machine whose cores other work keeps busy.
PATIENCE_S = 900
# Both storages are seeded with the same 90 days once per module (the Postgres case uses the
# newest 15 of them).
SEEDED_DAYS = 90


def _days(count: int) -> list[str]:
    last = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
    return [(last - dt.timedelta(days=n)).isoformat() for n in reversed(range(count))]


def _local_policy() -> dict:
    policy = policy_from_local()
    together, each = backfill_limits(policy["tag_concurrency_limits"])
    return {"together": together, "each": each, "dequeue_interval": policy["dequeue"][0]}


class _QueueSampler(threading.Thread):
    """Counts in-progress backfill runs, overall and per backfill, and the queued ones, every
    0.2 s."""

    def __init__(self, home: Path):
        super().__init__(daemon=True)
        self.home = home
        self.together = 0
        self.max_together = 0
        self.max_each = 0
        self.queued = 0
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            while not self.stop.is_set():
                runs = instance.get_runs(filters=dg.RunsFilter(statuses=list(IN_PROGRESS)))
                per_backfill = Counter(
                    run.tags["dagster/backfill"] for run in runs if "dagster/backfill" in run.tags
                )
                self.together = sum(per_backfill.values())
                self.max_together = max(self.max_together, self.together)
                self.max_each = max([self.max_each, *per_backfill.values()])
                queued = instance.get_runs(
                    filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])
                )
                self.queued = sum("dagster/backfill" in run.tags for run in queued)
                self.samples += 1
                time.sleep(0.2)


def _event_time(instance, run_id: str, event_type: dg.DagsterEventType) -> float | None:
    entries = instance.all_logs(run_id, of_type=event_type)
    return entries[0].timestamp if entries else None


def _wait_for_run(instance, run_id: str, timeout: float) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run.is_finished:
            return run
        time.sleep(0.5)
    raise TimeoutError(f"run {run_id} did not finish in {timeout}s")


def _waiting_at(instance, runs: list[dg.DagsterRun], moment: float) -> dict[str, float]:
    """The runs that were in the queue at `moment` (enqueued before it, taken off after it),
    each with the timestamp it was taken off the queue."""
    waiting = {}
    for run in runs:
        enqueued = _event_time(instance, run.run_id, dg.DagsterEventType.RUN_ENQUEUED)
        dequeued = _event_time(instance, run.run_id, dg.DagsterEventType.RUN_STARTING)
        if enqueued is not None and enqueued <= moment and (dequeued is None or dequeued > moment):
            waiting[run.run_id] = dequeued
    return waiting


def _objects(root: Path, days: list[str]) -> dict[str, bytes]:
    """The approved version of every asset and day, keyed by its (content-addressed) key."""
    store = LocalObjectStore(root / "object-store")
    approved = {}
    for day in days:
        for asset in FEATURE_ASSETS:
            try:
                data, report = read_published(store, asset, day, daily_partitions)
            except PartitionNotPublished:
                continue
            approved[report.object_key] = data
    return approved


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """A warehouse seeded once for the module: both storage cases copy it."""
    root = tmp_path_factory.mktemp("seeded")
    days = _days(SEEDED_DAYS)
    seed_warehouse(
        SqliteBackend(str(root / "warehouse.sqlite")),
        dt.date.fromisoformat(days[0]),
        dt.date.fromisoformat(days[-1]),
        impressions=150,
    )
    return root


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request):
    """The instance's storage: the embedded SQLite, or a fresh database on the real Postgres."""
    if request.param == "sqlite":
        return None
    database = request.getfixturevalue("postgres_database")
    # dagster-postgres talks through psycopg2 (SQLAlchemy would otherwise pick psycopg 3).
    server = POSTGRES_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://")
    return f"{server}/{database}"


def test_daily_run_is_never_starved_by_backfills(storage, seeded, tmp_path):
    # On Postgres the same policy is exercised at a smaller scale to keep the suite short.
    days = _days(SEEDED_DAYS if storage is None else 15)
    overlap = days[-30:] if storage is None else days[-5:]
    policy = _local_policy()

    root = tmp_path / "local"
    shutil.copytree(seeded, root)
    reference = tmp_path / "reference"
    shutil.copytree(seeded, reference)

    home = embedded_home(tmp_path / "dagster_home")
    if storage:
        config = yaml.safe_load((home / "dagster.yaml").read_text())
        config["storage"] = {"postgres": {"postgres_url": storage}}
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))

    env = {"LOCAL_DATA_DIR": str(root), "DAGSTER_DEPLOYMENT": "local"}
    sampler = _QueueSampler(home)
    # The daemon starts once every backfill is launched, so its first iteration requests all
    # of their runs: launched while it runs, the later ones could wait for its next iteration
    # (30 s on), and the first runs finish before the queue ever fills (seen on Postgres).
    with DagsterProcesses(home, env, log_dir=tmp_path, daemon=False) as dagster:
        backfills = [
            dagster.launch_asset_backfill(FEATURE_ASSETS, days),
            dagster.launch_asset_backfill(FEATURE_ASSETS, overlap),
            dagster.launch_asset_backfill(FEATURE_ASSETS, overlap),
        ]
        if storage:
            # One run each: six runs for the four backfill slots, so two wait in the queue.
            backfills += [
                dagster.launch_asset_backfill(FEATURE_ASSETS, chunk)
                for chunk in (days[:5], days[5:10], days[10:15])
            ]
        dagster.start_daemon()
        sampler.start()
        with dg.DagsterInstance.from_config(str(home)) as instance:
            # Fire the daily tick once the backfills hold their whole share of the queue and
            # more of their runs wait behind it: on that state, however long a loaded machine
            # takes to reach it (the bound only turns a hang into a failure that says so).
            wait_for(
                lambda: sampler.together == policy["together"] and sampler.queued,
                PATIENCE_S,
                f"the backfills holding {policy['together']} runs with more queued",
                interval=0.2,
            )
            tick = dt.datetime.combine(
                dt.date.fromisoformat(days[-1]) + dt.timedelta(days=1), dt.time(6), dt.UTC
            )
            daily_run_id = dagster.fire_schedule_tick(
                "daily_features_schedule", "daily_features_job", tick.timestamp()
            )
            daily = _wait_for_run(instance, daily_run_id, timeout=PATIENCE_S)
            enqueued = _event_time(instance, daily_run_id, dg.DagsterEventType.RUN_ENQUEUED)
            # The coordinator reports RUN_STARTING when it takes the run off the queue.
            dequeued = _event_time(instance, daily_run_id, dg.DagsterEventType.RUN_STARTING)
            started = _event_time(instance, daily_run_id, dg.DagsterEventType.RUN_START)
            passes = dagster.coordinator_iterations(after=enqueued, until=dequeued)
            statuses = {b: dagster.wait_for_backfill(b, timeout=PATIENCE_S) for b in backfills}
            all_backfill_runs = [
                run
                for backfill in backfills
                for run in instance.get_runs(
                    filters=dg.RunsFilter(tags={"dagster/backfill": backfill})
                )
            ]
            waiting = _waiting_at(instance, all_backfill_runs, enqueued)
            backfill_runs = [
                r for r in all_backfill_runs if r.tags["dagster/backfill"] == backfills[0]
            ]
        sampler.stop.set()
        sampler.join(timeout=10)

    print(
        f"[{'postgres' if storage else 'sqlite'}] daily run: taken off the queue on the "
        f"coordinator's pass {passes} after it arrived, ahead of the {len(waiting)} backfill "
        f"runs waiting with it; in-progress backfill runs: max {sampler.max_together} "
        f"together, {sampler.max_each} per backfill over {sampler.samples} samples; "
        f"{len(backfill_runs)} runs for {len(days)} days"
    )
    assert daily.status == dg.DagsterRunStatus.SUCCESS
    assert daily.tags["dagster/priority"] == "10"
    assert sampler.max_together == policy["together"], "the backfills never filled their share"
    assert waiting, "no backfill run was waiting in the queue when the daily run arrived"
    # Ahead of every backfill run queued with it: each of those left the queue after it did.
    assert all(left is not None and left > dequeued for left in waiting.values()), waiting
    assert 1 <= passes <= MAX_COORDINATOR_PASSES, dagster.logs()
    assert enqueued <= dequeued <= started
    assert sampler.max_each <= policy["each"]
    assert set(statuses.values()) == {"COMPLETED_SUCCESS"}
    assert len(backfill_runs) == -(-len(days) // 30)  # 30 partitions per run
    published = _objects(root, days)
    assert len(published) == len(days) * len(FEATURE_ASSETS)

    # The overlapping days hold exactly the bytes one batched run writes on its own.
    single = dg.materialize(
        [daily_events, *feature_assets],
        resources=build_resources("local", local_root=reference),
        tags=partition_range_tags(overlap[0], overlap[-1]),
    )
    assert single.success
    assert _objects(root, overlap) == _objects(reference, overlap)
    for table in FEATURE_TABLES:
        data, _ = read_published(
            LocalObjectStore(root / "object-store"), table.name, overlap[0], daily_partitions
        )
        frame = from_parquet_bytes(data)
        assert frame.group_by(list(table.primary_key)).aggregate([]).num_rows == frame.num_rows
