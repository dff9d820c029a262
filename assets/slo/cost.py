"""What a daily run cost: its seconds times the resources it held, at the configured prices.

A run holds `cpus_per_run` CPUs from RUN_START to its end; a training run whose trainer ran on
CUDA also holds `world_size` GPUs (the device and world size its `model_checkpoint`
materialization reports). Retried attempts are paid for too.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from assets.slo.runs import Attempt, Chain
from resources.pricing import Rates

CHECKPOINT_ASSET = "model_checkpoint"


@dataclass(frozen=True)
class Trainer:
    device: str
    world_size: int

    @property
    def gpus(self) -> int:
        return self.world_size if self.device.startswith("cuda") else 0


def trainers(instance: dg.DagsterInstance, day: str) -> dict[str, Trainer]:
    """Run id -> the trainer its model_checkpoint materialization for `day` reports."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(CHECKPOINT_ASSET), asset_partitions=[day]),
        limit=100,
    ).records
    found = {}
    for record in records:
        materialization = record.asset_materialization
        if materialization is None or "device" not in materialization.metadata:
            continue
        metadata = materialization.metadata
        training_run = metadata["training_run"].value if "training_run" in metadata else {}
        found[record.run_id] = Trainer(
            device=str(metadata["device"].value),
            world_size=int(training_run.get("world_size", 1)),  # type: ignore[union-attr]
        )
    return found


def attempt_cost(attempt: Attempt, trainer: Trainer | None, rates: Rates) -> float:
    if attempt.started_at is None or attempt.ended_at is None:
        return 0.0
    hours = (attempt.ended_at - attempt.started_at) / 3600
    gpus = trainer.gpus if trainer else 0
    return hours * (rates.cpus_per_run * rates.cpu_hour_usd + gpus * rates.gpu_hour_usd)


def chain_cost(chain: Chain, found: dict[str, Trainer], rates: Rates) -> float:
    return sum(attempt_cost(a, found.get(a.run_id), rates) for a in chain.attempts)
