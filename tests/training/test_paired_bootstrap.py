"""The paired bootstrap of two models' difference on the same rows: the weighted AUC is the
rank AUC of the resampled rows, the interval is repeatable, it covers no difference for equal
models, excludes it for a clearly worse model, and narrows as the day holds more rows."""

import numpy as np
import pytest

from training.metrics import log_loss, roc_auc
from training.paired_bootstrap import _tie_groups, paired_difference, weighted_auc


def _day(rows: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(-1.5, 1.0, rows)
    labels = (rng.random(rows) < 1.0 / (1.0 + np.exp(-truth))).astype(np.float64)
    return labels, truth + rng.normal(0.0, 0.3, rows)


def test_weighted_auc_is_the_rank_auc_of_the_resampled_rows():
    labels, logits = _day(400)
    logits[:60] = np.round(logits[:60])  # ties
    rng = np.random.default_rng(0)
    picks = rng.integers(0, 400, size=(5, 400))
    counts = np.stack([np.bincount(p, minlength=400) for p in picks]).astype(np.float64)
    weighted = weighted_auc(labels, counts, *_tie_groups(logits))
    for row, pick in enumerate(picks):
        assert weighted[row] == pytest.approx(roc_auc(labels[pick], logits[pick]), abs=1e-12)


def test_full_sample_estimates_are_the_metric_differences_and_repeatable():
    labels, logits = _day(1000)
    worse = logits * 1.8
    first = paired_difference(labels, worse, logits, resamples=300, seed=5)
    assert first.log_loss.estimate == pytest.approx(
        log_loss(labels, worse) - log_loss(labels, logits)
    )
    assert first.auc.estimate == pytest.approx(roc_auc(labels, worse) - roc_auc(labels, logits))
    assert paired_difference(labels, worse, logits, resamples=300, seed=5) == first
    assert paired_difference(labels, worse, logits, resamples=300, seed=6) != first


def test_equal_models_cover_zero_and_a_worse_model_is_excluded():
    labels, logits = _day(2000)
    same = paired_difference(labels, logits, logits.copy(), resamples=200)
    assert same.log_loss.lower == same.log_loss.upper == 0.0
    assert same.auc.lower == same.auc.upper == 0.0
    noisy = logits + np.random.default_rng(9).normal(0.0, 1.0, len(logits))
    worse = paired_difference(labels, noisy, logits, resamples=500, confidence=0.99)
    assert worse.log_loss.lower > 0.0  # production's log loss is surely higher
    assert worse.auc.upper < 0.0  # and its AUC surely lower
    better = paired_difference(labels, logits, noisy, resamples=500, confidence=0.99)
    assert better.log_loss.upper < 0.0 and better.auc.lower > 0.0


def test_the_interval_narrows_with_the_days_rows():
    widths = []
    for rows in (500, 8000):
        labels, logits = _day(rows)
        noisy = logits + np.random.default_rng(1).normal(0.0, 0.5, rows)
        interval = paired_difference(labels, noisy, logits, resamples=400).log_loss
        widths.append(interval.upper - interval.lower)
    assert widths[1] < widths[0] / 2


def test_one_class_leaves_auc_undefined_and_bad_input_is_refused():
    labels = np.zeros(50)
    logits = np.linspace(-2, 2, 50)
    result = paired_difference(labels, logits, logits * 2, resamples=100)
    assert result.auc.estimate is None and result.auc.lower is None
    assert result.log_loss.lower is not None
    with pytest.raises(ValueError, match="paired rows differ"):
        paired_difference(labels, logits, logits[:10])
    with pytest.raises(ValueError, match="confidence"):
        paired_difference(labels, logits, logits, confidence=1.0)
