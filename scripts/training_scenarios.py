"""Training scenarios driven through the real Dagster processes (tests and benchmarks):
approved days on an embedded environment, a whole run killed the way the OOM killer or a
node loss kills it, and the weights an uninterrupted run of the same plan ends with."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from assets.features.assets import feature_assets
from assets.model.model_checkpoint import ModelTrainingConfig, plan_training_run
from assets.model.training_dataset import training_dataset
from assets.partitions import partition_range_tags
from assets.sources.daily_events import daily_events
from resources.factory import build_resources
from resources.paths import PROJECT_ROOT
from resources.storage.object_store import ObjectStore
from resources.warehouse.backends import SqliteBackend
from scripts.synthetic_events import seed_warehouse

PROC = Path("/proc")


def approve_days(root: Path, first: dt.date, last: dt.date, trained: list[dt.date]) -> dict:
    """Seed the warehouse for [first, last], approve the events and features of every day (one
    range run, as a backfill would) and build the training sets of `trained`."""
    root.mkdir(parents=True, exist_ok=True)
    seed_warehouse(SqliteBackend(str(root / "warehouse.sqlite")), first, last)
    resources = build_resources("local", local_root=root)
    features = [daily_events, *feature_assets]
    tags = partition_range_tags(first.isoformat(), last.isoformat())
    if not dg.materialize(features, resources=resources, tags=tags).success:
        raise RuntimeError(f"features for {first}..{last} did not pass their gates")
    for day in trained:
        result = dg.materialize(
            [*features, training_dataset],
            selection=[training_dataset.key],
            partition_key=day.isoformat(),
            resources=resources,
        )
        if not result.success:
            raise RuntimeError(f"training_dataset {day} failed")
    return resources


def _children(pid: int) -> list[int]:
    found = []
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def parent_pid(pid: int) -> int:
    """The pid of the process that started `pid` (Linux /proc)."""
    return int((PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])


def process_tree(pid: int) -> list[int]:
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for parent in frontier for child in _children(parent)]
        tree += frontier
    return tree


def kill_process_tree(pid: int) -> list[int]:
    """SIGKILL a run worker and everything it started (step processes, the Pipes bridge, the
    trainer) at once, as a node loss would: frozen first, so no process sees another die."""
    tree = process_tree(pid)
    for member in tree:
        os.kill(member, signal.SIGSTOP)
    for member in tree:
        os.kill(member, signal.SIGKILL)
    return tree


def checkpoint_weights(store: ObjectStore, prefix: str) -> dict:
    from training.checkpoint import CheckpointManager

    loaded = CheckpointManager(store, prefix).load_latest(None)
    if loaded is None:
        raise RuntimeError(f"no checkpoint under {prefix}")
    return loaded.payloads["model.pt"]


def _bare_run(resources: dict, partition: str, config: ModelTrainingConfig, prefix: str) -> str:
    """The asset's trainer command for `partition` (same inputs, config, parent and code), run
    with the bare trainer from scratch under `prefix`; returns its stdout (JSON lines)."""
    plan = plan_training_run(resources["storage"], partition, config)
    args = list(plan.trainer_args)
    args[args.index("--checkpoint-prefix") + 1] = prefix
    args[args.index("--resume")] = "--no-resume"
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def uninterrupted_weights(
    resources: dict, partition: str, config: ModelTrainingConfig, scratch_prefix: str
) -> dict:
    """The final weights of the same plan trained in one go under another prefix."""
    _bare_run(resources, partition, config, scratch_prefix)
    return checkpoint_weights(resources["storage"].open_store(), scratch_prefix)


def steps_for_seconds(resources: dict, partition: str, seconds: float, multiple: int) -> int:
    """Training steps that take about `seconds` here and now: a short bare run of the day's
    plan measures this machine's speed (a rounded-up multiple of `multiple`)."""
    probe = ModelTrainingConfig(total_steps=200, checkpoint_every_steps=200)
    output = _bare_run(resources, partition, probe, "scratch/speed-probe")
    summary = next(
        event
        for event in map(json.loads, filter(None, output.splitlines()))
        if event.get("event") == "summary"
    )
    steps_per_second = summary["steps"] / summary["train_loop_s"]
    return multiple * max(1, -(-int(seconds * steps_per_second) // multiple))


def heartbeat_step(store: ObjectStore, prefix: str) -> int:
    """The newest step the trainer under `prefix` reported (0 before its first report)."""
    key = f"{prefix}/progress.json"
    return json.loads(store.get_bytes(key))["step"] if store.exists(key) else 0


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what}: not after {timeout:.0f}s")


def run_partition(run) -> str:
    """The one day a run materializes: backfill runs name it as a one-day range."""
    tags = run.tags
    return tags.get("dagster/partition") or tags["dagster/asset_partition_range_start"]
