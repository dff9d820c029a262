"""The guard's verdict on one day: is production worse than the version it replaced, on the
same unseen rows, beyond the tolerance and beyond what the day's sample size can explain?

Pure: it reads the paired-bootstrap interval of the difference (production minus replaced) and
the thresholds, nothing else. Production has regressed when the whole interval lies beyond the
tolerance on the worse side, for log loss (lower bound above `max_log_loss_increase`) or for
AUC (upper bound below minus `max_auc_drop`). A small day gives a wide interval, so it takes a
larger regression to be judged one; fewer than `min_rows` rows are not judged at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
from pydantic import Field


class GuardConfig(dg.Config):
    """How sure the guard must be before it takes production back."""

    confidence: float = Field(
        default=0.99,
        gt=0.0,
        lt=1.0,
        description="Coverage of the central bootstrap interval on each difference (0.99: "
        "rolled back only when the interval, 0.5 % in each tail, lies beyond the tolerance).",
    )
    resamples: int = Field(default=1000, ge=100, description="Bootstrap resamples of the rows.")
    seed: int = Field(default=0, description="Seed of the resamples (the verdict is repeatable).")
    max_log_loss_increase: float = Field(
        default=0.002,
        ge=0.0,
        description="Log loss production may lose against the version it replaced before it "
        "counts as a regression.",
    )
    max_auc_drop: float = Field(
        default=0.005,
        ge=0.0,
        description="AUC production may lose against the version it replaced before it counts "
        "as a regression.",
    )
    min_rows: int = Field(
        default=500,
        ge=1,
        description="Rows of the day needed to judge at all (fewer: recorded, not judged).",
    )
    calibration_bins: int = Field(
        default=10, description="Equal-width probability bins of the expected calibration error."
    )


@dataclass(frozen=True)
class Decision:
    regressed: bool
    judged: bool  # False: too few rows (or no defined difference) to judge
    findings: tuple[str, ...]  # one line per metric: the difference, the interval, the tolerance


def _bounds(interval: dict) -> str:
    return f"[{interval['lower']:+.4f}, {interval['upper']:+.4f}]"


def decide(difference: dict, config: GuardConfig) -> Decision:
    """The verdict from `PairedDifference.to_json()` of production minus the replaced version."""
    rows, level = difference["rows"], f"{difference['confidence']:.0%}"
    if rows < config.min_rows:
        return Decision(
            False, False, (f"{rows} rows < min_rows {config.min_rows}: recorded, not judged",)
        )
    findings, regressed, judged = [], False, False
    loss = difference["log_loss"]
    if loss["lower"] is not None:
        judged = True
        worse = loss["lower"] > config.max_log_loss_increase
        regressed |= worse
        findings.append(
            f"log_loss {'regressed' if worse else 'ok'}: production minus replaced "
            f"{loss['estimate']:+.4f}, {level} interval {_bounds(loss)}, tolerance "
            f"max_log_loss_increase {config.max_log_loss_increase}"
        )
    auc = difference["auc"]
    if auc["lower"] is not None:
        judged = True
        worse = auc["upper"] < -config.max_auc_drop
        regressed |= worse
        findings.append(
            f"auc {'regressed' if worse else 'ok'}: production minus replaced "
            f"{auc['estimate']:+.4f}, {level} interval {_bounds(auc)}, tolerance max_auc_drop "
            f"{config.max_auc_drop}"
        )
    if not judged:
        findings.append("no metric is defined on these rows: recorded, not judged")
    return Decision(regressed, judged, tuple(findings))
