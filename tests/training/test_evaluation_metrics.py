"""The evaluation's metrics and scoring (training/metrics.py, training/evaluate.py): the
constant baseline, expected calibration error, AUC per segment, and two checkpoints scored on
exactly the trainer's held-out rows."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from contract.model_inputs import CTR_MODEL_INPUTS
from resources.storage.object_store import LocalObjectStore
from tests.support.trainer_process import INPUT_TABLES, TINY_CONFIG
from training.checkpoint import MANIFEST_NAME, CheckpointManager
from training.config import TrainConfig
from training.data import load_dataset
from training.evaluate import HeldOutMismatch, held_out_rows, score_checkpoint, score_models
from training.loop import MODEL_FILE
from training.metrics import (
    constant_log_loss,
    expected_calibration_error,
    log_loss,
    probabilities,
    segment_auc,
)
from training.model import build_model


def test_constant_log_loss_is_the_log_loss_of_a_constant_logit():
    labels = np.array([0, 0, 1, 0, 1, 0, 0, 0], dtype=float)
    rate = 0.3
    logit = math.log(rate / (1 - rate))
    assert constant_log_loss(labels, rate) == pytest.approx(
        log_loss(labels, np.full(len(labels), logit))
    )
    # The best constant is the observed rate; a window without a click stays finite.
    assert constant_log_loss(labels, labels.mean()) < constant_log_loss(labels, 0.5)
    assert math.isfinite(constant_log_loss(labels, 0.0))
    assert constant_log_loss(np.array([]), 0.2) is None


def test_expected_calibration_error_by_hand():
    # Bin [0.1, 0.2): predictions 0.1, 0.1 with one click -> |0.1 - 0.5| for 2 rows.
    # Bin [0.9, 1.0]: predictions 0.9, 1.0 with two clicks -> |0.95 - 1.0| for 2 rows.
    labels = np.array([1, 0, 1, 1], dtype=float)
    predicted = np.array([0.1, 0.1, 0.9, 1.0])
    expected = (2 * 0.4 + 2 * 0.05) / 4
    assert expected_calibration_error(labels, predicted, bins=10) == pytest.approx(expected)
    # A perfectly calibrated constant has no error; one bin is |mean predicted - observed|.
    assert expected_calibration_error(labels, np.full(4, 0.75), bins=10) == pytest.approx(0.0)
    assert expected_calibration_error(labels, predicted, bins=1) == pytest.approx(
        abs(predicted.mean() - labels.mean())
    )
    assert expected_calibration_error(np.array([]), np.array([])) is None
    with pytest.raises(ValueError, match="bins"):
        expected_calibration_error(labels, predicted, bins=0)


def test_segment_auc_counts_rows_and_leaves_one_class_segments_undefined():
    labels = np.array([1, 0, 1, 0, 0, 0])
    scores = np.array([0.9, 0.1, 0.2, 0.8, 0.3, 0.4])
    segments = np.array(["ios", "ios", "web", "web", "tv", None], dtype=object)
    result = segment_auc(labels, scores, segments)
    assert result["ios"] == {"rows": 2, "positives": 1, "auc": 1.0}
    assert result["web"] == {"rows": 2, "positives": 1, "auc": 0.0}
    assert result["tv"]["auc"] is None and result["null"]["rows"] == 1
    assert probabilities(np.array([0.0, 1000.0]))[0] == pytest.approx(0.5)


def _save_random_model(store: LocalObjectStore, prefix: str, config: TrainConfig, seed: int):
    torch.manual_seed(seed)
    model = build_model(config)
    with CheckpointManager(store, prefix) as manager:
        key = manager.save(1, {MODEL_FILE: model.state_dict()}, fingerprint=f"fp-{seed}")
        manager.wait()
    manifest = store.get_bytes(f"{key}/{MANIFEST_NAME}")
    return {
        "checkpoint_key": key,
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "config": config.to_dict(),
    }


def test_models_are_scored_on_the_trainers_held_out_rows(inputs):
    store = LocalObjectStore(inputs.root)
    config = TrainConfig.from_dict(TINY_CONFIG)
    first = _save_random_model(store, "checkpoints/t/a", config, seed=1)
    second = _save_random_model(store, "checkpoints/t/b", config, seed=2)
    fraction = config.eval_fraction

    dataset = load_dataset(store, INPUT_TABLES, config)
    rows = held_out_rows(store, INPUT_TABLES, CTR_MODEL_INPUTS, fraction)
    assert np.array_equal(rows.labels, dataset.eval.label.numpy())
    assert rows.train_rows == len(dataset.train)
    assert rows.train_positive_rate == pytest.approx(float(dataset.train.label.mean()))

    scores = score_models(
        store, {"candidate": first, "production": second}, input_tables=INPUT_TABLES,
        model_inputs=CTR_MODEL_INPUTS, eval_fraction=fraction,
    )  # fmt: skip
    candidate, production, baseline = scores["candidate"], scores["production"], scores["baseline"]
    assert candidate["examples"] == production["examples"] == len(dataset.eval) > 100
    assert candidate["observed_ctr"] == pytest.approx(float(dataset.eval.label.mean()))
    assert 0.0 <= candidate["ece"] <= 1.0 and 0.0 < candidate["mean_predicted_ctr"] < 1.0
    assert candidate["auc"] != production["auc"]  # two different models, same rows
    assert baseline["ctr"] == pytest.approx(rows.train_positive_rate)
    assert baseline["log_loss"] == pytest.approx(
        constant_log_loss(rows.labels, rows.train_positive_rate)
    )
    assert list(candidate["segments"]) == list(CTR_MODEL_INPUTS.segments)  # the declared ones
    for column in CTR_MODEL_INPUTS.segments:
        segments = candidate["segments"][column]
        assert sum(s["rows"] for s in segments.values()) == candidate["examples"]
        assert set(segments) == set(production["segments"][column])

    # The same checkpoint scored alone gives the same numbers.
    alone = score_checkpoint(
        store, step_key=first["checkpoint_key"], manifest_sha256=first["manifest_sha256"],
        config=first["config"], input_tables=INPUT_TABLES, model_inputs=CTR_MODEL_INPUTS,
        eval_fraction=fraction,
    )  # fmt: skip
    assert alone == candidate

    # Rows that are not the trainer's held-out rows are refused, never silently misaligned.
    other = held_out_rows(store, INPUT_TABLES, CTR_MODEL_INPUTS, 0.5)
    with pytest.raises(HeldOutMismatch, match="held-out split"):
        score_checkpoint(
            store, step_key=first["checkpoint_key"], manifest_sha256=first["manifest_sha256"],
            config=first["config"], input_tables=INPUT_TABLES, model_inputs=CTR_MODEL_INPUTS,
            eval_fraction=fraction, rows=other,
        )  # fmt: skip
