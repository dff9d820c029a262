"""The guard's verdict from the paired-bootstrap interval: a regression only when the whole
interval lies beyond the tolerance on the worse side, for log loss or AUC; too few rows are
recorded, not judged."""

from assets.guard.decision import GuardConfig, decide


def _difference(loss, auc, rows=2000):
    def interval(bounds):
        if bounds is None:
            return {"estimate": None, "lower": None, "upper": None}
        lower, upper = bounds
        return {"estimate": (lower + upper) / 2, "lower": lower, "upper": upper}

    return {
        "rows": rows,
        "resamples": 1000,
        "confidence": 0.99,
        "seed": 0,
        "log_loss": interval(loss),
        "auc": interval(auc),
    }


CONFIG = GuardConfig(max_log_loss_increase=0.002, max_auc_drop=0.005, min_rows=500)


def test_log_loss_interval_beyond_the_tolerance_is_a_regression():
    decision = decide(_difference((0.0021, 0.01), (-0.004, 0.003)), CONFIG)
    assert decision.judged and decision.regressed
    assert decision.findings[0].startswith("log_loss regressed: production minus replaced")
    assert "99% interval [+0.0021, +0.0100]" in decision.findings[0]
    assert "max_log_loss_increase 0.002" in decision.findings[0]
    assert decision.findings[1].startswith("auc ok")


def test_auc_interval_below_the_tolerance_is_a_regression():
    decision = decide(_difference((-0.001, 0.001), (-0.02, -0.0051)), CONFIG)
    assert decision.regressed
    assert decision.findings[1].startswith("auc regressed")


def test_an_interval_reaching_into_the_tolerance_is_not_a_regression():
    # Worse on average, but the day's rows cannot rule out a difference within the tolerance.
    decision = decide(_difference((0.0019, 0.03), (-0.05, -0.004)), CONFIG)
    assert decision.judged and not decision.regressed


def test_a_better_production_stays():
    assert not decide(_difference((-0.02, -0.01), (0.01, 0.02)), CONFIG).regressed


def test_too_few_rows_or_no_metric_are_not_judged():
    small = decide(_difference((0.5, 0.9), (-0.5, -0.4), rows=499), CONFIG)
    assert not small.judged and not small.regressed
    assert "499 rows < min_rows 500" in small.findings[0]
    undefined = decide(_difference(None, None), CONFIG)
    assert not undefined.judged and not undefined.regressed
