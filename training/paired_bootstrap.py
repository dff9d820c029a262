"""A paired bootstrap of the difference between two models scored on the same rows.

Both models' logits are resampled with the same row indices (the pairing): what the interval
measures is how much the difference itself varies with the day's rows, which is far less than
each model's own metric varies (a hard day is hard for both). The resamples come from a fixed
seed, so the same rows and logits always give the same interval.

Differences are `a - b`: log loss (`a` worse when positive) and ROC AUC (`a` worse when
negative). AUC is computed per resample as a weighted Mann-Whitney statistic (a row drawn k
times weighs k), ties counted half, exactly as `training.metrics.roc_auc` on the resampled rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Resamples handled at once: bounds the (chunk x rows) weight matrices.
CHUNK = 100


@dataclass(frozen=True)
class Interval:
    """The full-sample difference and the central bootstrap interval at `confidence`."""

    estimate: float | None
    lower: float | None
    upper: float | None

    def to_json(self) -> dict[str, float | None]:
        return {"estimate": self.estimate, "lower": self.lower, "upper": self.upper}


@dataclass(frozen=True)
class PairedDifference:
    rows: int
    resamples: int
    confidence: float
    seed: int
    log_loss: Interval  # log loss of a minus log loss of b
    auc: Interval  # AUC of a minus AUC of b (None bounds: one class only)

    def to_json(self) -> dict:
        return {
            "rows": self.rows,
            "resamples": self.resamples,
            "confidence": self.confidence,
            "seed": self.seed,
            "log_loss": self.log_loss.to_json(),
            "auc": self.auc.to_json(),
        }


def row_log_loss(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Binary cross-entropy of each row from its logit (log(1 + e^z) - y z, stable)."""
    z = np.asarray(logits, dtype=np.float64)
    return np.logaddexp(0.0, z) - np.asarray(labels, dtype=np.float64) * z


def _tie_groups(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, group starts): rows sorted by score, and where each run of equal scores starts."""
    order = np.argsort(logits, kind="stable")
    ordered = logits[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return order, starts


def weighted_auc(
    labels: np.ndarray, weights: np.ndarray, order: np.ndarray, starts: np.ndarray
) -> np.ndarray:
    """AUC per row of `weights` (resamples x rows): positives' weight above negatives' weight,
    ties half. NaN where a resample holds one class only."""
    positive = labels.astype(bool)[order]
    w = weights[:, order]
    pos = np.add.reduceat(w * positive, starts, axis=1)
    neg = np.add.reduceat(w * ~positive, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)
    auc[(total_pos == 0) | (total_neg == 0)] = np.nan
    return auc


def _interval(estimate: float | None, draws: np.ndarray, confidence: float) -> Interval:
    draws = draws[np.isfinite(draws)]
    if estimate is None or not len(draws):
        return Interval(estimate, None, None)
    tail = (1.0 - confidence) / 2.0
    lower, upper = np.quantile(draws, [tail, 1.0 - tail])
    return Interval(float(estimate), float(lower), float(upper))


def paired_difference(
    labels: np.ndarray,
    logits_a: np.ndarray,
    logits_b: np.ndarray,
    *,
    resamples: int = 1000,
    confidence: float = 0.99,
    seed: int = 0,
) -> PairedDifference:
    """Model a minus model b on the same rows: the log-loss and AUC differences with their
    paired-bootstrap intervals (`resamples` draws of the rows with replacement, `seed`)."""
    labels = np.asarray(labels, dtype=np.float64)
    logits_a = np.asarray(logits_a, dtype=np.float64)
    logits_b = np.asarray(logits_b, dtype=np.float64)
    n = len(labels)
    if not (len(logits_a) == len(logits_b) == n):
        raise ValueError(
            f"paired rows differ: {n} labels, {len(logits_a)} and {len(logits_b)} logits"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1) (got {confidence})")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1 (got {resamples})")
    if n == 0:
        empty = Interval(None, None, None)
        return PairedDifference(0, resamples, confidence, seed, empty, empty)
    loss_gap = row_log_loss(labels, logits_a) - row_log_loss(labels, logits_b)
    groups_a, groups_b = _tie_groups(logits_a), _tie_groups(logits_b)
    full = np.ones((1, n))
    auc_full = weighted_auc(labels, full, *groups_a)[0] - weighted_auc(labels, full, *groups_b)[0]
    rng = np.random.default_rng(seed)
    loss_draws, auc_draws = [], []
    for start in range(0, resamples, CHUNK):
        size = min(CHUNK, resamples - start)
        picks = rng.integers(0, n, size=(size, n))
        flat = (np.arange(size)[:, None] * n + picks).ravel()
        counts = np.bincount(flat, minlength=size * n).reshape(size, n).astype(np.float64)
        loss_draws.append(counts @ loss_gap / n)
        auc_draws.append(
            weighted_auc(labels, counts, *groups_a) - weighted_auc(labels, counts, *groups_b)
        )
    return PairedDifference(
        rows=n,
        resamples=resamples,
        confidence=confidence,
        seed=seed,
        log_loss=_interval(float(loss_gap.mean()), np.concatenate(loss_draws), confidence),
        auc=_interval(
            None if np.isnan(auc_full) else float(auc_full),
            np.concatenate(auc_draws),
            confidence,
        ),
    )
