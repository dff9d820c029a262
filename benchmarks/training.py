"""Cost of orchestration, checkpointing and resume for the training asset.

Trains the same config on the same approved 7-day window, in fresh copies of one prepared
environment: as the `model_checkpoint` asset (Dagster run in-process -> Pipes subprocess
bridge -> trainer subprocess) and as the bare `python -m training` command with the same
arguments. The two alternate, and each repeat swaps who goes first, so neither always gets the
cold page cache or the quiet second; figures are medians over --repeats of each. Then the last
bare copy is run again to time a resume from its final checkpoint.

    python -m benchmarks.training --steps 1000 --batch-size 512 --checkpoint-every 100 --repeats 3

Prints wall times, samples/s of both, checkpoint blocking time as a share of the training
loop, resume time; the last line is `ratio=<orchestrated wall / bare wall>` (medians).
"""

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from assets.features.assets import feature_assets
from assets.model.model_checkpoint import ModelTrainingConfig, model_checkpoint, plan_training_run
from assets.model.training_dataset import training_dataset
from assets.partitions import partition_range_tags
from assets.sources.daily_events import daily_events
from benchmarks.features import QUIET_CONSOLE
from resources.factory import build_resources
from resources.paths import PROJECT_ROOT
from resources.warehouse.backends import SqliteBackend
from scripts.synthetic_events import seed_warehouse

DAY = dt.date(2026, 11, 1)
ALL_ASSETS = [daily_events, *feature_assets, training_dataset, model_checkpoint]


def prepare(root: Path, impressions: int) -> None:
    first = DAY - dt.timedelta(days=6)
    seed_warehouse(
        SqliteBackend(str(root / "warehouse.sqlite")), first, DAY, impressions=impressions
    )
    resources = build_resources("local", local_root=root)
    tags = partition_range_tags(first.isoformat(), DAY.isoformat())
    features = [daily_events, *feature_assets]
    assert dg.materialize(
        features, resources=resources, tags=tags, run_config=QUIET_CONSOLE
    ).success
    assert dg.materialize(
        ALL_ASSETS, selection=[training_dataset.key], partition_key=DAY.isoformat(),
        resources=resources, run_config=QUIET_CONSOLE,
    ).success  # fmt: skip


def run_orchestrated(root: Path, config: dict) -> tuple[float, dict]:
    resources = build_resources("local", local_root=root)
    run_config = {**QUIET_CONSOLE, "ops": {"model_checkpoint": {"config": config}}}
    started = time.perf_counter()
    result = dg.materialize(
        ALL_ASSETS, selection=[model_checkpoint.key], partition_key=DAY.isoformat(),
        resources=resources, run_config=run_config,
    )  # fmt: skip
    wall = time.perf_counter() - started
    [event] = result.get_asset_materialization_events()
    return wall, {k: v.value for k, v in event.materialization.metadata.items()}


def bare_command(root: Path, config: dict) -> list[str]:
    """Exactly the trainer command the asset launches, without Dagster around it."""
    storage = build_resources("local", local_root=root)["storage"]
    run = plan_training_run(storage, DAY.isoformat(), ModelTrainingConfig(**config))
    return [sys.executable, "-m", "training", *run.trainer_args]


def run_bare(command: list[str]) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return wall, next(e for e in events if e["event"] == "summary")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--impressions", type=int, default=4000, help="impressions per day")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, alternated")
    args = parser.parse_args(argv)
    config = {
        "total_steps": args.steps,
        "batch_size": args.batch_size,
        "checkpoint_every_steps": args.checkpoint_every,
        "warmup_steps": min(50, args.steps),
        "log_every_steps": max(1, args.steps // 20),
    }
    walls: dict[str, list[float]] = {"bare": [], "orchestrated": []}
    loops: dict[str, list[float]] = {"bare": [], "orchestrated": []}
    blocking: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp, "prepared")
        prepared.mkdir()
        prepare(prepared, args.impressions)
        for repeat in range(args.repeats):
            order = ("bare", "orchestrated") if repeat % 2 == 0 else ("orchestrated", "bare")
            for side in order:
                # A fresh copy each time: a root with checkpoints in it would resume, not train.
                root = Path(tmp, f"{side}-{repeat}")
                shutil.copytree(prepared, root)
                if side == "bare":
                    bare_root = root
                    wall, summary = run_bare(bare_command(root, config))
                    device, precision = summary["device"], summary["precision"]
                else:
                    wall, summary = run_orchestrated(root, config)
                    blocking.append(summary["checkpoint_blocking_s"] / summary["train_loop_s"])
                walls[side].append(wall)
                loops[side].append(summary["train_loop_s"])
        resume_wall, resumed = run_bare(bare_command(bare_root, config))

    samples = args.steps * args.batch_size
    bare_wall, orchestrated_wall = (statistics.median(walls[side]) for side in walls)
    print(
        f"steps={args.steps} batch_size={args.batch_size} checkpoint_every={args.checkpoint_every}"
        f" repeats={args.repeats} (alternated, medians)"
    )
    print(f"device={device} precision={precision}")
    print(
        f"bare_walls_s={_listed(walls['bare'])} "
        f"orchestrated_walls_s={_listed(walls['orchestrated'])}"
    )
    print(f"bare_wall_s={bare_wall:.2f} orchestrated_wall_s={orchestrated_wall:.2f}")
    print(
        f"samples_per_s bare={samples / statistics.median(loops['bare']):.0f} "
        f"orchestrated={samples / statistics.median(loops['orchestrated']):.0f}"
    )
    print(f"checkpoint_blocking_share={statistics.median(blocking):.4f}")
    print(
        f"resume_load_s={resumed['resume_s']:.3f} resume_process_wall_s={resume_wall:.2f} "
        f"(resumed_from_step={resumed['resumed_from_step']})"
    )
    print(f"ratio={orchestrated_wall / bare_wall:.2f}")


def _listed(values: list[float]) -> str:
    return ",".join(f"{value:.2f}" for value in values)


if __name__ == "__main__":
    main()
