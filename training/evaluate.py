"""Score saved models on the held-out examples of a window (the evaluation asset and the
promotion's re-decision call this): every model scored for a day sees exactly the same rows,
the trainer's own hash-chosen evaluation split (`training.data.load_dataset`).

Per model: AUC, log loss, calibration (mean predicted CTR against the observed CTR, and the
expected calibration error over equal-width bins) and AUC per value of each segment column the
model-input declaration names. Once per window: the constant-CTR baseline, which predicts the
training split's positive rate for every held-out row.

Every model is built and encodes the rows with its own config; a config recorded before configs
carried the model-input declaration is read with the day's.

For a later day (the next-day guard): every example of that day, which no model of an earlier
day trained on (`unseen_rows`), and each model's logits on them (`checkpoint_logits`), so two
models can be compared row by row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from resources.storage.object_store import ObjectStore
from training.checkpoint import load_step_key
from training.config import TrainConfig
from training.data import attach_history, encode, eval_mask, load_dataset, read_inputs
from training.loop import MODEL_FILE
from training.metrics import (
    constant_log_loss,
    expected_calibration_error,
    log_loss,
    probabilities,
    roc_auc,
    segment_auc,
)
from training.model import build_model
from training.model_inputs import ModelInputs

DEFAULT_CALIBRATION_BINS = 10


class HeldOutMismatch(RuntimeError):
    """The held-out rows a model was scored on are not the rows the segments were read from."""


@dataclass(frozen=True)
class HeldOutRows:
    """The window's held-out rows as the trainer splits them: labels, the segment columns, and
    the training split's positive rate (what the constant baseline predicts)."""

    labels: np.ndarray
    segments: dict[str, np.ndarray]
    train_positive_rate: float | None
    train_rows: int

    def __len__(self) -> int:
        return len(self.labels)


def _model_config(
    config: Mapping[str, Any], model_inputs: ModelInputs, **overrides: Any
) -> TrainConfig:
    """A model's recorded config; the day's declaration where the record predates its own."""
    return TrainConfig.from_dict({"model_inputs": model_inputs.to_dict(), **config, **overrides})


def _segments(table: pa.Table, model_inputs: ModelInputs) -> dict[str, np.ndarray]:
    return {
        column: np.asarray(table[column].to_pylist(), dtype=object)
        for column in model_inputs.segments
    }


def _sorted_examples(
    store: ObjectStore, input_tables: Mapping[str, str], model_inputs: ModelInputs
) -> tuple[pa.Table, dict[str, pa.Table | None]]:
    inputs = read_inputs(store, input_tables, model_inputs)
    key = model_inputs.examples.key
    order = pc.sort_indices(inputs.examples, sort_keys=[(key, "ascending")])
    return inputs.examples.take(order), inputs.history


def held_out_rows(
    store: ObjectStore,
    input_tables: Mapping[str, str],
    model_inputs: ModelInputs,
    eval_fraction: float,
) -> HeldOutRows:
    """Labels and segment columns of the held-out rows, in `load_dataset`'s row order (sorted by
    the examples' key, then the key-hash split): row i here is row i of every model's scores."""
    table, _ = _sorted_examples(store, input_tables, model_inputs)
    mask = eval_mask(table[model_inputs.examples.key], eval_fraction)
    label = model_inputs.examples.label
    labels = table[label].to_numpy(zero_copy_only=False).astype(np.float64)
    held_out = table.filter(pa.array(mask))
    train_labels = labels[~mask]
    return HeldOutRows(
        labels=labels[mask],
        segments=_segments(held_out, model_inputs),
        train_positive_rate=float(train_labels.mean()) if len(train_labels) else None,
        train_rows=len(train_labels),
    )


def baseline_scores(rows: HeldOutRows) -> dict[str, Any]:
    """The constant-CTR baseline: the training split's positive rate predicted for every row."""
    rate = rows.train_positive_rate
    return {
        "ctr": rate,
        "log_loss": None if rate is None else constant_log_loss(rows.labels, rate),
        "train_rows": rows.train_rows,
    }


def model_scores(
    labels: np.ndarray,
    logits: np.ndarray,
    segments: Mapping[str, np.ndarray],
    bins: int = DEFAULT_CALIBRATION_BINS,
) -> dict[str, Any]:
    """Every metric of one model's logits on the held-out rows."""
    predicted = probabilities(logits)
    return {
        "auc": roc_auc(labels, logits),
        "log_loss": log_loss(labels, logits),
        "mean_predicted_ctr": float(predicted.mean()) if len(predicted) else None,
        "observed_ctr": float(np.mean(labels)) if len(labels) else None,
        "ece": expected_calibration_error(labels, predicted, bins),
        "calibration_bins": bins,
        "examples": len(labels),
        "positive_rate": float(np.mean(labels)) if len(labels) else None,
        "segments": {
            column: segment_auc(labels, logits, values) for column, values in segments.items()
        },
    }


@torch.no_grad()
def score_checkpoint(
    store: ObjectStore,
    *,
    step_key: str,
    manifest_sha256: str,
    config: Mapping[str, Any],
    input_tables: Mapping[str, str],
    model_inputs: ModelInputs,
    eval_fraction: float,
    rows: HeldOutRows | None = None,
    bins: int = DEFAULT_CALIBRATION_BINS,
) -> dict[str, Any]:
    """The metrics of the verified checkpoint on the held-out rows of `input_tables` (the
    key-hash split, so no model trained on them). `eval_fraction` is the candidate's, so
    every model scored for a day sees the same rows; each model encodes them with its own
    config (hash bucket counts may differ between days)."""
    train_config = _model_config(config, model_inputs, eval_fraction=eval_fraction)
    loaded = load_step_key(store, step_key, manifest_sha256)
    model = build_model(train_config)
    model.load_state_dict(loaded.payloads[MODEL_FILE])
    model.eval()
    held_out = load_dataset(store, input_tables, train_config).eval
    logits = model(held_out.categorical, held_out.numeric).numpy()
    labels = held_out.label.numpy().astype(np.float64)
    if rows is None:
        rows = held_out_rows(store, input_tables, model_inputs, eval_fraction)
    if len(labels) != len(rows) or not np.array_equal(labels, rows.labels):
        raise HeldOutMismatch(
            f"{step_key}: the trainer's held-out split has {len(labels)} rows, the segment "
            f"columns were read for {len(rows)} rows (or the labels differ): training.data and "
            "training.evaluate no longer split the window the same way. Fix held_out_rows to "
            "follow load_dataset."
        )
    return model_scores(labels, logits, rows.segments, bins)


@dataclass(frozen=True)
class UnseenRows:
    """Every example among the input keys (rows no model of an earlier day trained on), sorted
    by the examples' key, with the history of the days before each row's day attached."""

    table: pa.Table
    labels: np.ndarray
    segments: dict[str, np.ndarray]
    model_inputs: ModelInputs

    def __len__(self) -> int:
        return len(self.labels)


def unseen_rows(
    store: ObjectStore, input_tables: Mapping[str, str], model_inputs: ModelInputs
) -> UnseenRows:
    """All examples of the partitions of `input_tables` (a day after the models' windows: none
    of them trained on any row), history attached from the history partitions among them."""
    table, history = _sorted_examples(store, input_tables, model_inputs)
    table = attach_history(table, history, model_inputs)
    label = model_inputs.examples.label
    return UnseenRows(
        table=table,
        labels=table[label].to_numpy(zero_copy_only=False).astype(np.float64),
        segments=_segments(table, model_inputs),
        model_inputs=model_inputs,
    )


@torch.no_grad()
def checkpoint_logits(
    store: ObjectStore,
    *,
    step_key: str,
    manifest_sha256: str,
    config: Mapping[str, Any],
    rows: UnseenRows,
) -> np.ndarray:
    """The verified checkpoint's logits on `rows`, each row encoded with the model's own config."""
    train_config = _model_config(config, rows.model_inputs)
    loaded = load_step_key(store, step_key, manifest_sha256)
    model = build_model(train_config)
    model.load_state_dict(loaded.payloads[MODEL_FILE])
    model.eval()
    encoded = encode(rows.table, train_config)
    return model(encoded.categorical, encoded.numeric).numpy().astype(np.float64)


def score_models(
    store: ObjectStore,
    models: Mapping[str, Mapping[str, Any]],
    *,
    input_tables: Mapping[str, str],
    model_inputs: ModelInputs,
    eval_fraction: float,
    bins: int = DEFAULT_CALIBRATION_BINS,
) -> dict[str, Any]:
    """{name: scores} for each model (`checkpoint_key`, `manifest_sha256`, `config`) plus
    "baseline", all on the same held-out rows of the day's declaration."""
    rows = held_out_rows(store, input_tables, model_inputs, eval_fraction)
    scores: dict[str, Any] = {
        name: score_checkpoint(
            store,
            step_key=model["checkpoint_key"],
            manifest_sha256=model["manifest_sha256"],
            config=model["config"],
            input_tables=input_tables,
            model_inputs=model_inputs,
            eval_fraction=eval_fraction,
            rows=rows,
            bins=bins,
        )
        for name, model in models.items()
    }
    scores["baseline"] = baseline_scores(rows)
    return scores
