"""The trainer at production volume: streaming against in-memory data loading.

Writes a 7-day window of training_examples partitions (and the user/item daily features of the
six days before the trained day) at --impressions per day straight into a local object store,
vectorized from the same kind of latent-affinity population as scripts/synthetic_events.py,
with users and items growing with the volume (one user per 10 impressions, one item per 100,
both heavy-tailed), encoded with the pipeline's parquet writer settings (so its row groups).
Then trains the same config with `python -m training` as a child process, in-memory and
streaming alternated (each repeat swaps who goes first), and reports per mode the medians of
samples/s and of the peak memory: the child's peak RSS (getrusage of the waited-for child,
which also folds in the largest of its reaped loader workers) and the peak of the proportional
set size summed over its process tree (trainer plus workers), sampled every 0.1 s.

    python -m benchmarks.training_volume --impressions 1000000 --steps 600 --repeats 2
    python -m benchmarks.training_volume --impressions 5000000 --modes streaming --repeats 1

samples/s are given three ways: steady (the training loop after its first progress interval,
once the first shuffle window is in), loop (the whole training loop) and process (the whole
command, loading and the held-out pass included).

The last line is `ratio=<streaming / in-memory steady samples/s>` (medians); with one
mode only (the in-memory trainer needs several times the window's size in memory) it is
`ratio=nan` and says why.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from assets.publishing.parquet import to_parquet_bytes
from contract.model_inputs import CTR_MODEL_INPUTS
from resources.paths import PROJECT_ROOT
from resources.storage.object_store import LocalObjectStore
from scripts.synthetic_examples import Population, day_tables
from scripts.training_scenarios import process_tree

LAST_DAY = dt.date(2026, 11, 7)
WINDOW_DAYS = 7
MODES = ("in_memory", "streaming")


def _key(asset: str, day: dt.date) -> str:
    return f"features/{asset}/{day:%Y-%m-%d}.parquet"


def prepare(root: Path, impressions: int) -> tuple[dict[str, str], dict[str, str]]:
    """Write the window; returns the trainer's inputs ({object key: table}) and their content
    versions."""
    store = LocalObjectStore(root)
    population = Population(impressions)
    keys, versions = {}, {}
    for offset in range(WINDOW_DAYS - 1, -1, -1):
        day = LAST_DAY - dt.timedelta(days=offset)
        # History only from the days before the trained day.
        tables = day_tables(population, day, impressions, with_history=day < LAST_DAY)
        for asset, table in tables.items():
            parquet = to_parquet_bytes(table)
            store.put_bytes(_key(asset, day), parquet.data)
            keys[_key(asset, day)] = asset
            versions[_key(asset, day)] = parquet.sha256
        del tables
    return keys, versions


def _tree_pss_bytes(pid: int) -> int:
    """Proportional set size summed over the process tree: pages a forked loader worker still
    shares with the trainer count once, not once per process as an RSS sum would."""
    total = 0
    for member in process_tree(pid):
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
    return total


def run_trainer(
    root: Path, keys: dict[str, str], versions: dict, config: dict, prefix: str, threads: int
) -> dict:
    """One `python -m training` child: its summary, getrusage peak and sampled tree peak."""
    command = [sys.executable, "-m", "training", "--store-root", str(root)]
    for key, table in keys.items():
        command += ["--input-key", f"{table}={key}"]
    command += [
        "--checkpoint-prefix", prefix, "--config-json", json.dumps(config),
        "--input-data-versions-json", json.dumps(versions), "--code-version", "bench",
        "--no-resume", "--device", "cpu",
    ]  # fmt: skip
    stdout = Path(root, f"{prefix.replace('/', '-')}.out")
    started = time.perf_counter()
    with stdout.open("w") as out:
        # A fixed thread count: on a loaded machine, spinning OpenMP threads beyond the free
        # cores dominate whatever else is measured.
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.Popen(
            command, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.PIPE, env=env
        )
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.1):
                peak[0] = max(peak[0], _tree_pss_bytes(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"trainer exited {proc.returncode}: {stderr.decode()[-3000:]}")
    events = [json.loads(line) for line in stdout.read_text().splitlines() if line[:1] == "{"]
    summary = next(e for e in events if e["event"] == "summary")
    # After the first progress interval: the rate once the first window is in (the wait for it
    # is in loop_s and wall_s).
    progress = [e for e in events if e["event"] == "progress"]
    # Each progress line's rate covers the steps since the line before it.
    steps = [b["step"] - a["step"] for a, b in itertools.pairwise(progress)]
    seconds = sum(
        n * config["batch_size"] / e["samples_per_s"]
        for n, e in zip(steps, progress[1:], strict=True)
    )
    return {
        "steady_samples_per_s": sum(steps) * config["batch_size"] / seconds,
        "wall_s": wall,
        "loop_s": summary["train_loop_s"],
        "rusage_peak_bytes": usage.ru_maxrss * 1024,
        "tree_peak_pss_bytes": peak[0],
        "metrics": summary["metrics"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions", type=int, default=1_000_000, help="impressions a day")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=1, help="streaming loader workers")
    parser.add_argument("--buffer-rows", type=int, default=1_048_576)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each mode, alternated")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--root", type=Path, help="keep the generated window here")
    args = parser.parse_args(argv)
    base = {
        "total_steps": args.steps,
        "batch_size": args.batch_size,
        "warmup_steps": min(100, args.steps),
        "checkpoint_every_steps": args.steps,
        "checkpoint_every_seconds": 1e9,
        "log_every_steps": max(1, args.steps // 10),
        "history_features": True,
        # The example's declaration: the window is the example generator's.
        "model_inputs": CTR_MODEL_INPUTS.to_dict(),
    }
    configs = {
        "in_memory": base,
        "streaming": {
            **base,
            "data_loading": "streaming",
            "loader_workers": args.workers,
            "shuffle_buffer_rows": args.buffer_rows,
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp)
        started = time.perf_counter()
        keys, versions = prepare(root, args.impressions)
        generated = time.perf_counter() - started
        results: dict[str, list[dict]] = {mode: [] for mode in args.modes}
        for repeat in range(args.repeats):
            order = args.modes if repeat % 2 == 0 else list(reversed(args.modes))
            for mode in order:
                prefix = f"ckpt/{mode}-{repeat}"
                run = run_trainer(root, keys, versions, configs[mode], prefix, args.threads)
                results[mode].append(run)
                print(
                    f"run repeat={repeat} mode={mode} wall_s={run['wall_s']:.1f} "
                    f"loop_s={run['loop_s']:.1f} "
                    f"rusage_peak_mib={run['rusage_peak_bytes'] / 2**20:.0f} "
                    f"tree_peak_pss_mib={run['tree_peak_pss_bytes'] / 2**20:.0f}",
                    flush=True,
                )
    samples = args.steps * args.batch_size
    rows = args.impressions * WINDOW_DAYS
    print(
        f"window={WINDOW_DAYS}d impressions_per_day={args.impressions} rows={rows} "
        f"generate_s={generated:.1f} steps={args.steps} batch_size={args.batch_size} "
        f"workers={args.workers} threads={args.threads} buffer_rows={args.buffer_rows} "
        f"repeats={args.repeats} "
        "(alternated, medians; shared machine, timings noisy)"
    )
    steady = {}
    for mode, runs in results.items():
        steady[mode] = statistics.median(r["steady_samples_per_s"] for r in runs)
        print(
            f"{mode}: steady_samples_per_s={steady[mode]:.0f} "
            f"loop_samples_per_s={samples / statistics.median(r['loop_s'] for r in runs):.0f} "
            f"process_samples_per_s={samples / statistics.median(r['wall_s'] for r in runs):.0f} "
            f"peak_gib rusage_rss={_gib(runs, 'rusage_peak_bytes')} "
            f"tree_pss={_gib(runs, 'tree_peak_pss_bytes')} "
            f"eval_auc={runs[-1]['metrics']['eval_auc']:.4f}"
        )
    if len(steady) == 2:
        print(f"ratio={steady['streaming'] / steady['in_memory']:.2f}")
    else:
        [mode] = steady
        print(f"ratio=nan ({mode} only: no baseline mode was run)")


def _gib(runs: list[dict], field: str) -> str:
    return f"{statistics.median(r[field] for r in runs) / 2**30:.2f}"


if __name__ == "__main__":
    main()
