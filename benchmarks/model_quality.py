"""How close the daily model gets to the best possible model, day by day, on embedded defaults.

Seeds the synthetic warehouse (2,000 impressions a day, seed 7), approves every day's events
and features through Dagster, then runs the daily loop in date order exactly as the daily
training job does (training_dataset -> model_checkpoint, warm-started from the production
model -> model_evaluation), one in-process run per day. For each training day it prints:

- `heldout_auc`: the candidate's AUC on the held-out rows of its window (what the evaluation
  asset records), and `oracle_auc` on the same rows: the generator's own click probability
  sigmoid(1.2 <user, item> - 2.0 + 0.3 [ios]), i.e. the Bayes-optimal score;
- `fresh_auc` / `fresh_oracle`: the same on 20,000 impressions of the following day that no
  model saw (a low-noise estimate);
- whether the evaluation passed, and which day the model warm-started from.

    python -m benchmarks.model_quality --days 20

The last line is `ratio=<heldout_auc / oracle_auc>` of the 14th training day (or the last one).
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
import torch

from assets.features.assets import feature_assets
from assets.features.logic import training_examples
from assets.model.evaluation import model_evaluation
from assets.model.model_checkpoint import model_checkpoint
from assets.model.records import read_candidate, read_evaluation
from assets.model.training_dataset import manifest_inputs, manifest_key, training_dataset
from assets.partitions import TRAINING_WINDOW_DAYS, partition_range_tags
from assets.sources.daily_events import daily_events
from benchmarks.features import QUIET_CONSOLE
from resources.factory import build_resources
from resources.storage.object_store import LocalObjectStore
from resources.warehouse.backends import SqliteBackend
from scripts.synthetic_events import _Population, generate_events, seed_warehouse
from training.checkpoint import load_step_key
from training.config import TrainConfig
from training.data import encode, eval_mask, read_examples
from training.loop import MODEL_FILE
from training.metrics import roc_auc
from training.model import build_model

FIRST_DAY = dt.date(2026, 10, 1)
SEED, USERS, ITEMS, IMPRESSIONS = 7, 500, 200, 2000  # scripts/synthetic_events.py defaults
PIPELINE = [daily_events, *feature_assets]
TRAINING = [training_dataset, model_checkpoint, model_evaluation]
TARGET_DAY = 14


def oracle_logits(table: pa.Table, population: _Population) -> np.ndarray:
    users = table["user_id"].to_numpy()
    items = table["item_id"].to_numpy()
    ios = np.array(table["device"].to_pylist()) == "ios"
    affinity = np.einsum("ij,ij->i", population.user_vectors[users], population.item_vectors[items])
    return 1.2 * affinity - 2.0 + 0.3 * ios


@torch.no_grad()
def model_logits(store, candidate: dict, table: pa.Table) -> np.ndarray:
    config = TrainConfig.from_dict(candidate["config"])
    model = build_model(config)
    loaded = load_step_key(store, candidate["checkpoint_key"], candidate["manifest_sha256"])
    model.load_state_dict(loaded.payloads[MODEL_FILE])
    model.eval()
    encoded = encode(table, config)
    return model(encoded.categorical, encoded.numeric).numpy()


def held_out_rows(store, partition: str, eval_fraction: float) -> pa.Table:
    """The rows the evaluation asset scored: the window's eval split, from the manifest."""
    manifest = json.loads(store.get_bytes(manifest_key(partition)))
    table = read_examples(store, [entry["object_key"] for entry in manifest_inputs(manifest)])
    table = table.take(pc.sort_indices(table, sort_keys=[("event_id", "ascending")]))
    return table.filter(pa.array(eval_mask(table["event_id"], eval_fraction)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=20, help="days of data (>= 7)")
    parser.add_argument("--fresh", type=int, default=20_000, help="fresh test impressions")
    args = parser.parse_args()
    population = _Population(SEED, USERS, ITEMS)
    last = FIRST_DAY + dt.timedelta(days=args.days - 1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seed_warehouse(SqliteBackend(str(root / "warehouse.sqlite")), FIRST_DAY, last)
        resources = build_resources("local", local_root=root)
        store = LocalObjectStore(root / "object-store")
        tags = partition_range_tags(FIRST_DAY.isoformat(), last.isoformat())
        assert dg.materialize(
            PIPELINE, resources=resources, tags=tags, run_config=QUIET_CONSOLE
        ).success
        print(
            "day  partition   heldout_auc oracle_auc ratio  fresh_auc fresh_oracle ratio  "
            "passed warm_start_from  seconds"
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
                run_config=QUIET_CONSOLE,
                raise_on_error=False,
            )
            seconds = time.monotonic() - started
            candidate = read_candidate(store, partition)
            verdict = read_evaluation(store, partition)
            if candidate is None or verdict is None:
                print(f"{index + 1:3d}  {partition}  run failed (success={result.success})")
                continue
            held_out = held_out_rows(store, partition, candidate["config"]["eval_fraction"])
            labels = held_out["label"].to_numpy()
            auc = roc_auc(labels, model_logits(store, candidate, held_out))
            oracle = roc_auc(labels, oracle_logits(held_out, population))
            next_day = day + dt.timedelta(days=1)
            fresh = training_examples(generate_events(next_day, args.fresh, seed=SEED), next_day)
            fresh_labels = fresh["label"].to_numpy()
            fresh_auc = roc_auc(fresh_labels, model_logits(store, candidate, fresh))
            fresh_oracle = roc_auc(fresh_labels, oracle_logits(fresh, population))
            ratios.append((index + 1, auc / oracle))
            print(
                f"{index + 1:3d}  {partition}  {auc:.4f}      {oracle:.4f}     "
                f"{auc / oracle:.3f}  {fresh_auc:.4f}    {fresh_oracle:.4f}       "
                f"{fresh_auc / fresh_oracle:.3f}  {verdict['passed']!s:6} "
                f"{candidate['warm_start_from'] or 'none':16} {seconds:.1f}",
                flush=True,
            )
    target = next((r for d, r in ratios if d == TARGET_DAY), ratios[-1][1] if ratios else 0.0)
    print(f"ratio={target:.3f}")


if __name__ == "__main__":
    main()
