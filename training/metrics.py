"""Held-out metrics without sklearn: ROC AUC as a rank statistic, and log loss."""

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
