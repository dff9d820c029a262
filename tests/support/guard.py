"""Shared by the next-day guard tests: days trained and promoted in-process with real
training, a good model, and a damaged candidate that still passes its own evaluation.

The damaged candidate is barely trained (learning rate 1e-6, 10 steps from random weights)
and its evaluation runs with every check relaxed, standing in for an evaluation that is
optimistic about its own window (for example held-out rows leaked into training). It is
promoted by the real `model_promotion`, compare-and-swap included."""

import dagster as dg

from assets.guard.asset import model_next_day_guard
from assets.model.evaluation import model_evaluation
from assets.model.model_checkpoint import model_checkpoint
from assets.registry.promotion import model_promotion, production_model
from resources.registry.registry import PRODUCTION, ModelVersion
from tests.support.example import (
    example_daily_events,
    example_feature_assets,
    example_training_dataset,
)

PIPELINE = [example_daily_events, *example_feature_assets]
TRAINING = [example_training_dataset, model_checkpoint, model_evaluation, model_promotion]
ALL = [*PIPELINE, example_training_dataset, model_next_day_guard, *TRAINING[1:], production_model]
GOOD = {"total_steps": 150, "checkpoint_every_steps": 50, "init_from": "production"}
DAMAGED = {**GOOD, "lr": 1e-6, "init_from": "none", "total_steps": 10, "warmup_steps": 0}
# A 150-step model reaches an AUC of about 0.6; the guard is under test, not the floor.
EVALUATION = {"min_auc": 0.55}
LAX = {
    "min_auc": 0.0,
    "baseline_margin": -1.0,
    "max_auc_drop": 1.0,
    "max_log_loss_increase": 1.0,
    "max_segment_auc_drop": 1.0,
}


def materialize(resources: dict, partition: str, selection: list, ops: dict | None = None):
    return dg.materialize(
        ALL,
        selection=[asset.key for asset in selection],
        partition_key=partition,
        resources=resources,
        run_config={"ops": ops or {}},
        raise_on_error=False,
    )


def train_and_promote(
    resources: dict, partition: str, training: dict, evaluation: dict | None = None
) -> ModelVersion:
    """Train, evaluate and promote `partition` in-process; the production version after it."""
    result = materialize(
        resources,
        partition,
        TRAINING,
        {
            "model_checkpoint": {"config": training},
            "model_evaluation": {"config": evaluation or EVALUATION},
        },
    )
    if not result.success:
        raise RuntimeError(f"training {partition} failed")
    return resources["registry"].open_registry().resolve(PRODUCTION)
