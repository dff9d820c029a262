"""Score a saved model on the held-out examples of a window (the evaluation asset calls this):
the candidate and the production model are scored on exactly the same rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from resources.storage.object_store import ObjectStore
from training.checkpoint import load_step_key
from training.config import TrainConfig
from training.data import load_dataset
from training.loop import MODEL_FILE
from training.metrics import log_loss, roc_auc
from training.model import build_model


@torch.no_grad()
def score_checkpoint(
    store: ObjectStore,
    *,
    step_key: str,
    manifest_sha256: str,
    config: Mapping[str, Any],
    input_keys: Sequence[str],
    eval_fraction: float,
) -> dict[str, Any]:
    """AUC and log loss of the verified checkpoint on the held-out rows of `input_keys` (the
    event-id hash split, so no model trained on them). `eval_fraction` is the candidate's, so
    every model scored for a day sees the same rows."""
    train_config = TrainConfig.from_dict({**config, "eval_fraction": eval_fraction})
    loaded = load_step_key(store, step_key, manifest_sha256)
    model = build_model(train_config)
    model.load_state_dict(loaded.payloads[MODEL_FILE])
    model.eval()
    held_out = load_dataset(store, input_keys, train_config).eval
    logits = model(held_out.categorical, held_out.numeric).numpy()
    labels = held_out.label.numpy()
    return {
        "auc": roc_auc(labels, logits),
        "log_loss": log_loss(labels, logits),
        "examples": len(held_out),
        "positive_rate": float(labels.mean()) if len(labels) else None,
    }
