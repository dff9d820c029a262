"""How close the daily model gets to the best possible model, day by day, on embedded defaults.

Seeds the synthetic warehouse (2,000 impressions a day, seed 7), approves every day's events
and features through Dagster, then runs the daily loop in date order as the daily training job
does (training_dataset -> model_checkpoint -> model_evaluation), one in-process run per day,
with `--init-from` (none: every day from scratch; previous_day: D-1's model; production: the
newest model that passed its evaluation, what the daily sensor's runs use). For each training
day it prints:

- `auc` / `logloss`: the day's model on the held-out rows of its window (what the evaluation
  asset scores), and `oracle_auc` / `oracle_ll` on the same rows: the generator's own click
  probability sigmoid(1.2 <user, item> - 2.0 + 0.3 [ios]), i.e. the Bayes-optimal score;
- `fresh_auc` / `fresh_oracle`: the same on `--fresh` impressions of the following day that no
  model saw (a low-noise estimate; their history features are the approved ones before it);
- whether the evaluation passed, and which day the model warm-started from.

    python -m benchmarks.model_quality --days 16 --init-from previous_day

The last line is `ratio=<auc / oracle_auc>` of data day 14 (the 8th daily model; or the last
day when there are fewer).
"""

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from assets.features.assets import feature_assets
from assets.features.logic import as_table, training_examples
from assets.model.evaluation import model_evaluation
from assets.model.model_checkpoint import model_checkpoint
from assets.model.records import read_candidate, read_evaluation
from assets.model.training_dataset import (
    declaration,
    manifest_key,
    model_input_tables,
    training_dataset,
)
from assets.partitions import TRAINING_WINDOW_DAYS, daily_partitions, partition_range_tags
from assets.publishing.gate_reports import read_published
from assets.sources.daily_events import daily_events
from benchmarks.features import QUIET_CONSOLE
from contract.model_inputs import MODEL_INPUTS
from resources.factory import build_resources
from resources.storage.object_store import LocalObjectStore
from resources.warehouse.backends import SqliteBackend
from scripts.synthetic_events import _Population, generate_events, seed_warehouse
from training.checkpoint import load_step_key
from training.config import TrainConfig
from training.data import attach_history, encode, eval_mask, read_inputs
from training.loop import MODEL_FILE
from training.metrics import log_loss, roc_auc
from training.model import build_model

FIRST_DAY = dt.date(2026, 10, 1)
SEED, USERS, ITEMS, IMPRESSIONS = 7, 500, 200, 2000  # scripts/synthetic_events.py defaults
PIPELINE = [daily_events, *feature_assets]
TRAINING = [training_dataset, model_checkpoint, model_evaluation]
TARGET_DAY = 14


def oracle_logits(table: pa.Table, population: _Population) -> np.ndarray:
    """The example generator's true logits (scripts/synthetic_events.py): its own columns."""
    users = table["user_id"].to_numpy()
    items = table["item_id"].to_numpy()
    ios = np.array(table["device"].to_pylist()) == "ios"
    affinity = np.einsum("ij,ij->i", population.user_vectors[users], population.item_vectors[items])
    return 1.2 * affinity - 2.0 + 0.3 * ios


@torch.no_grad()
def model_logits(store, candidate: dict, table: pa.Table) -> np.ndarray:
    """The candidate's logits on `table` (history columns attached when it uses them)."""
    config = TrainConfig.from_dict({"model_inputs": MODEL_INPUTS.to_dict(), **candidate["config"]})
    model = build_model(config)
    loaded = load_step_key(store, candidate["checkpoint_key"], candidate["manifest_sha256"])
    model.load_state_dict(loaded.payloads[MODEL_FILE])
    model.eval()
    encoded = encode(table, config)
    return model(encoded.categorical, encoded.numeric).numpy()


def held_out_rows(store, partition: str, eval_fraction: float) -> pa.Table:
    """The rows the evaluation asset scored: the window's eval split, with the history the
    model read (the manifest's model inputs), in the trainer's row order."""
    manifest = json.loads(store.get_bytes(manifest_key(partition)))
    declared = declaration(manifest)
    inputs = read_inputs(store, model_input_tables(manifest), declared)
    key = declared.examples.key
    table = inputs.examples
    table = table.take(pc.sort_indices(table, sort_keys=[(key, "ascending")]))
    table = attach_history(table, inputs.history, declared)
    return table.filter(pa.array(eval_mask(table[key], eval_fraction)))


def fresh_rows(store, day: dt.date, impressions: int) -> pa.Table:
    """`impressions` new impressions of `day`, with the approved history of the window's days
    before it (what the model would be served with that day)."""
    fresh = as_table(training_examples(generate_events(day, impressions, seed=SEED), day))
    history = {}
    for asset in (spec.table for spec in MODEL_INPUTS.history):
        tables = []
        for back in range(1, TRAINING_WINDOW_DAYS):
            data, _ = read_published(
                store, asset, (day - dt.timedelta(days=back)).isoformat(), daily_partitions
            )
            tables.append(pq.read_table(pa.BufferReader(data)))
        history[asset] = pa.concat_tables(tables, promote_options="permissive")
    return attach_history(fresh, history, MODEL_INPUTS)


def publish_features(
    root: Path, first: dt.date, last: dt.date, impressions: int
) -> tuple[dict, LocalObjectStore]:
    """An embedded environment under `root`: the warehouse seeded for [first, last] and every
    day's events and features published by one range run; its resources and object store."""
    seed_warehouse(
        SqliteBackend(str(root / "warehouse.sqlite")), first, last, impressions=impressions
    )
    resources = build_resources("local", local_root=root)
    tags = partition_range_tags(first.isoformat(), last.isoformat())
    assert dg.materialize(
        PIPELINE, resources=resources, tags=tags, run_config=QUIET_CONSOLE
    ).success
    return resources, LocalObjectStore(root / "object-store")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=16, help="days of data (>= 7)")
    parser.add_argument(
        "--init-from", choices=("none", "previous_day", "production"), default="production"
    )
    parser.add_argument(
        "--fresh", type=int, default=20_000, help="fresh test impressions (0: none)"
    )
    parser.add_argument("--impressions", type=int, default=IMPRESSIONS, help="impressions a day")
    parser.add_argument("--steps", type=int, default=None, help="total_steps (default: asset's)")
    parser.add_argument(
        "--no-history", action="store_true", help="train without the user/item history features"
    )
    args = parser.parse_args(argv)
    population = _Population(SEED, USERS, ITEMS)
    last = FIRST_DAY + dt.timedelta(days=args.days - 1)
    training_config: dict = {"init_from": args.init_from, "history_features": not args.no_history}
    if args.steps is not None:
        training_config |= {"total_steps": args.steps, "warmup_steps": min(20, args.steps)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        resources, store = publish_features(root, FIRST_DAY, last, args.impressions)
        print(
            f"init_from={args.init_from} history_features={not args.no_history}\n"
            "day  partition   auc    logloss oracle_auc oracle_ll ratio  fresh_auc fresh_oracle "
            "ratio  passed warm_start_from  seconds"
        )
        ratios = []
        for index in range(TRAINING_WINDOW_DAYS - 1, args.days):
            day = FIRST_DAY + dt.timedelta(days=index)
            partition = day.isoformat()
            started = time.monotonic()
            result = dg.materialize(
                [*PIPELINE, *TRAINING],
                selection=[asset.key for asset in TRAINING],
                partition_key=partition,
                resources=resources,
                run_config={
                    **QUIET_CONSOLE,
                    "ops": {"model_checkpoint": {"config": training_config}},
                },
                raise_on_error=False,
            )
            seconds = time.monotonic() - started
            candidate = read_candidate(store, partition)
            verdict = read_evaluation(store, partition)
            if candidate is None or candidate.get("run_id") != result.run_id:
                print(f"{index + 1:3d}  {partition}  run failed (success={result.success})")
                continue
            held_out = held_out_rows(store, partition, candidate["config"]["eval_fraction"])
            labels = held_out[MODEL_INPUTS.examples.label].to_numpy()
            logits = model_logits(store, candidate, held_out)
            auc, loss = roc_auc(labels, logits), log_loss(labels, logits)
            oracle = oracle_logits(held_out, population)
            oracle_auc, oracle_loss = roc_auc(labels, oracle), log_loss(labels, oracle)
            fresh_text = "-         -            -    "
            if args.fresh:
                fresh = fresh_rows(store, day + dt.timedelta(days=1), args.fresh)
                fresh_labels = fresh[MODEL_INPUTS.examples.label].to_numpy()
                fresh_auc = roc_auc(fresh_labels, model_logits(store, candidate, fresh))
                fresh_oracle = roc_auc(fresh_labels, oracle_logits(fresh, population))
                fresh_text = (
                    f"{fresh_auc:.4f}    {fresh_oracle:.4f}       {fresh_auc / fresh_oracle:.3f}"
                )
            ratios.append((index + 1, auc / oracle_auc))
            passed = (
                verdict["passed"]
                if verdict
                and verdict.get("candidate", {}).get("checkpoint_key")
                == candidate["checkpoint_key"]
                else None
            )
            print(
                f"{index + 1:3d}  {partition}  {auc:.4f} {loss:.4f}  {oracle_auc:.4f}     "
                f"{oracle_loss:.4f}    {auc / oracle_auc:.3f}  {fresh_text}  {passed!s:6} "
                f"{candidate.get('warm_start_from') or 'none':16} {seconds:.1f}",
                flush=True,
            )
    target = next((r for d, r in ratios if d == TARGET_DAY), ratios[-1][1] if ratios else 0.0)
    print(f"ratio={target:.3f}")


if __name__ == "__main__":
    main()
