"""Held-out metrics without sklearn: ROC AUC as a rank statistic, log loss, the constant-CTR
baseline's log loss, expected calibration error, and AUC per segment."""

from __future__ import annotations

import math

import numpy as np
import torch


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Mann-Whitney U / (n_pos * n_neg), ties counted half (average ranks).

    None when one class is absent: AUC is undefined there, and 0.5 would read as "a model that
    learned nothing" rather than "no evidence".
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0  # 1-based ranks, ties share their mean
    ranks = average_rank[inverse]
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def log_loss(labels: np.ndarray, logits: np.ndarray) -> float | None:
    """Mean binary cross-entropy computed from logits (stable: no clipping of probabilities)."""
    if len(labels) == 0:
        return None
    value = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.as_tensor(np.asarray(logits), dtype=torch.float64),
        torch.as_tensor(np.asarray(labels), dtype=torch.float64),
    ).item()
    return value if math.isfinite(value) else None


def probabilities(logits: np.ndarray) -> np.ndarray:
    """sigmoid(logits) in float64, stable for large magnitudes."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logits, dtype=np.float64), -500.0, 500.0)))


def constant_log_loss(labels: np.ndarray, rate: float) -> float | None:
    """Log loss of predicting the same CTR `rate` for every row (the constant baseline). None
    without rows; a rate of exactly 0 or 1 is clipped to 1e-12 from the edge, so a window with
    no click at all does not give an infinite baseline."""
    labels = np.asarray(labels, dtype=np.float64)
    if len(labels) == 0:
        return None
    p = min(max(float(rate), 1e-12), 1.0 - 1e-12)
    return float(-np.mean(labels * math.log(p) + (1.0 - labels) * math.log(1.0 - p)))


def expected_calibration_error(
    labels: np.ndarray, predicted: np.ndarray, bins: int = 10
) -> float | None:
    """ECE over `bins` equal-width bins of the predicted probability on [0, 1]: the row-weighted
    mean of |mean predicted - observed CTR| per bin (empty bins count nothing). A prediction of
    exactly 1.0 falls in the last bin."""
    labels = np.asarray(labels, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    if len(labels) == 0:
        return None
    if bins < 1:
        raise ValueError(f"bins must be >= 1 (got {bins})")
    index = np.minimum((predicted * bins).astype(np.int64), bins - 1)
    rows = np.bincount(index, minlength=bins)
    predicted_sum = np.bincount(index, weights=predicted, minlength=bins)
    observed_sum = np.bincount(index, weights=labels, minlength=bins)
    filled = rows > 0
    gaps = np.abs(predicted_sum[filled] - observed_sum[filled])  # = rows * |mean gap|
    return float(gaps.sum() / len(labels))


def segment_auc(
    labels: np.ndarray, scores: np.ndarray, segments: np.ndarray
) -> dict[str, dict[str, float | int | None]]:
    """{segment value: {rows, positives, auc}} for each distinct value of `segments` (a null
    segment value is reported as "null"). AUC is None where a segment holds one class only."""
    labels = np.asarray(labels)
    scores = np.asarray(scores)
    values = np.asarray(["null" if v is None else str(v) for v in segments], dtype=object)
    result: dict[str, dict[str, float | int | None]] = {}
    for value in sorted(set(values.tolist())):
        mask = values == value
        result[value] = {
            "rows": int(mask.sum()),
            "positives": int(np.asarray(labels[mask]).astype(bool).sum()),
            "auc": roc_auc(labels[mask], scores[mask]),
        }
    return result
