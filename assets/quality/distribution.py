"""Distribution gates: a day that is well-formed row by row but no longer means the same thing.

Each passed day keeps a compact, mergeable profile of its watched columns (category counts and
distinct counts; a fixed grid of quantiles per numeric column). A new day is compared with the
pooled profiles of its trailing passed days, and every threshold is calibrated from that same
history: each history day is compared with the others the same way (leave one out), and the
largest of those day-over-day statistics is the noise a clean day may show, and never less
than what the day's own sample size shows by chance. A statistic blocks
above max(severe floor, severe factor x noise) and warns above max(moderate floor, moderate
factor x noise). The functions take the column names as parameters and never name a table's
columns themselves. No Dagster here.
"""

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from assets.quality.columns import Columns, value_counts
from assets.quality.gates import GateResult, Severity

# Quantiles stored per numeric column: fine enough to read the median, the quartiles and the
# central 90 % range back, and to interpolate a history day's share outside a range.
QUANTILE_GRID = tuple(round(q * 0.05, 2) for q in range(21))
CENTRAL_RANGE = (0.05, 0.95)
# A categorical column keeps the counts of its most frequent values only (compact profiles for
# wide vocabularies); the rest are pooled under OTHER. Its distinct count is always exact.
MAX_CATEGORIES = 500
OTHER = "\x00other"
# A value absent from one side counts as half a row there (a continuity correction), and never
# as less than this share, so a rare value missing by chance from a small day does not explode
# the PSI while a value that is new (or gone) in a large day still weighs fully.
PSI_FLOOR_SHARE = 1e-4
PROFILE_KEY = "distribution"

CATEGORY_STABILITY = "category_stability"
CATEGORY_CARDINALITY = "category_cardinality"
NUMERIC_SCALE = "numeric_scale"
GATES = (CATEGORY_STABILITY, CATEGORY_CARDINALITY, NUMERIC_SCALE)


@dataclass(frozen=True)
class Level:
    """One severity level of one statistic: the threshold is max(floor, factor x noise)."""

    floor: float
    factor: float

    def threshold(self, noise: float) -> float:
        return max(self.floor, self.factor * noise)


@dataclass(frozen=True)
class DistributionThresholds:
    """Moderate (warn) and severe (block) levels per statistic, and how much history is needed.

    Log-ratio statistics (distinct count, inter-quartile range) are configured as factors and
    compared on the log scale, so a halving and a doubling weigh the same."""

    psi_moderate: Level = Level(0.1, 2.0)
    psi_severe: Level = Level(0.25, 4.0)
    distinct_moderate: Level = Level(math.log(1.2), 2.0)
    distinct_severe: Level = Level(math.log(1.4), 4.0)
    median_shift_moderate: Level = Level(0.25, 2.0)
    median_shift_severe: Level = Level(0.5, 4.0)
    spread_moderate: Level = Level(math.log(1.25), 2.0)
    spread_severe: Level = Level(math.log(1.5), 4.0)
    outside_moderate: Level = Level(0.25, 2.0)
    outside_severe: Level = Level(0.5, 4.0)
    min_history: int = 3
    # Gates that report without blocking even when severe (the gate config's warn_only).
    warn_only: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Finding:
    """One statistic of one column against the history's calibrated thresholds."""

    column: str
    statistic: str
    value: float
    moderate: float
    severe: float
    noise: float
    # How a value on this statistic's scale reads (a log ratio reads as a factor).
    show: Callable[[float], str]
    detail: str = ""
    # What the noise is, in words (by default the history's leave-one-out statistic).
    noise_source: str = ""

    @property
    def level(self) -> str:
        if self.value > self.severe:
            return "severe"
        return "moderate" if self.value > self.moderate else "ok"

    def describe(self) -> str:
        noise_source = self.noise_source or f"the history's own day-over-day {self.statistic}"
        return (
            f"{self.column} {self.statistic} {self.show(self.value)}{self.detail} (passes at <= "
            f"{self.show(self.moderate)}, blocks above {self.show(self.severe)}; "
            f"{noise_source} reached {self.show(self.noise)})"
        )


def _number(value: float) -> str:
    return f"{value:.3f}"


def _factor(log_ratio: float) -> str:
    return f"x{math.exp(log_ratio):.2f}"


def _share(value: float) -> str:
    return f"{value:.1%}"


# --- the profile a passed day keeps ---------------------------------------------------------


def distribution_profile(
    table: Columns, categorical: Sequence[str], numeric: Sequence[str]
) -> dict:
    """What the distribution gates remember about a passed day (JSON-ready, a few KB)."""
    return {
        "categories": {name: _category_counts(table, name) for name in categorical},
        "numeric": {name: _quantile_sketch(table.column(name)) for name in numeric},
    }


def _category_counts(table: Columns, name: str) -> dict:
    counts = value_counts(table, name).to_pylist()
    counts.sort(key=lambda entry: -entry["counts"])
    kept = {str(entry["values"]): entry["counts"] for entry in counts[:MAX_CATEGORIES]}
    rest = sum(entry["counts"] for entry in counts[MAX_CATEGORIES:])
    if rest:
        kept[OTHER] = rest
    return {"distinct": len(counts), "counts": kept}


def _finite_values(column: pa.ChunkedArray) -> np.ndarray:
    values = column.drop_null().to_numpy().astype(float) if len(column) else np.array([])
    return values[np.isfinite(values)]


def mid_quantile_curve(values: np.ndarray) -> Callable[[Sequence[float]], np.ndarray]:
    """Quantiles read from the mid-distribution function (each distinct value sits at the
    middle of its probability mass): the usual quantiles for continuous values, and for a
    discrete column (counts, prices from a list) they move smoothly with the mass instead of
    jumping a whole step when one row changes. The values are sorted once, however many
    quantiles are read."""
    unique, counts = np.unique(values, return_counts=True)
    cumulative = np.cumsum(counts)
    middle = (cumulative - counts / 2) / cumulative[-1]
    return lambda probabilities: np.interp(probabilities, middle, unique)


def _quantile_sketch(column: pa.ChunkedArray) -> dict:
    values = _finite_values(column)
    if not len(values):
        return {"count": 0, "grid": None}
    return {"count": len(values), "grid": mid_quantile_curve(values)(QUANTILE_GRID).tolist()}


# --- history ----------------------------------------------------------------------------------


def _history_for(
    history: Sequence[tuple[str, Mapping]], section: str, column: str
) -> list[tuple[str, Mapping]]:
    """(day, column profile) for the history days that profiled this column."""
    found = []
    for day, profile in history:
        entry = (profile.get(PROFILE_KEY) or {}).get(section, {}).get(column)
        if entry and (section != "numeric" or entry.get("grid")):
            found.append((day, entry))
    return found


def _days_text(days: Sequence[str]) -> str:
    ordered = sorted(days)
    if not ordered:
        return "no passed days"
    return f"the last {len(ordered)} passed days ({ordered[0]} to {ordered[-1]})"


def _waiting(days: int, thresholds: DistributionThresholds) -> str | None:
    if days >= thresholds.min_history:
        return None
    return f"not enough history yet ({days} of {thresholds.min_history} passed days)"


# --- statistics -------------------------------------------------------------------------------


def psi(
    actual: Mapping[str, float],
    expected: Mapping[str, float],
    actual_rows: int = 0,
    expected_rows: int = 0,
) -> float:
    """Population stability index of two share maps (0 = identical); with their row counts,
    a value absent from one side counts as half a row there."""
    actual_floor = max(PSI_FLOOR_SHARE, 0.5 / actual_rows if actual_rows else 0.0)
    expected_floor = max(PSI_FLOOR_SHARE, 0.5 / expected_rows if expected_rows else 0.0)
    total = 0.0
    for key in {*actual, *expected}:
        a = max(actual.get(key, 0.0), actual_floor)
        e = max(expected.get(key, 0.0), expected_floor)
        total += (a - e) * math.log(a / e)
    return total


def _pooled(days: Sequence[Mapping]) -> tuple[dict[str, float], int]:
    """The days' counts added up, as shares, and the rows they hold."""
    pooled: dict[str, int] = {}
    for day in days:
        for value, count in day["counts"].items():
            pooled[value] = pooled.get(value, 0) + count
    total = sum(pooled.values())
    return {value: count / (total or 1) for value, count in pooled.items()}, total


def _psi_of(days: Sequence[Mapping], baseline: Sequence[Mapping]) -> float:
    (shares, rows), (usual, usual_rows) = _pooled(days), _pooled(baseline)
    return psi(shares, usual, rows, usual_rows)


def _leave_one_out(days: Sequence, statistic: Callable) -> float:
    """The largest statistic of a history day against the other history days: the noise."""
    return max(
        (statistic(day, [*days[:i], *days[i + 1 :]]) for i, day in enumerate(days)), default=0.0
    )


def _distinct_log_ratio(distinct: int, others: Sequence[int]) -> float:
    usual = statistics.median(others)
    return abs(math.log(max(distinct, 1) / max(usual, 1)))


@dataclass(frozen=True)
class _Baseline:
    median: float
    iqr: float
    low: float
    high: float

    @classmethod
    def of(cls, grids: Sequence[Sequence[float]]) -> "_Baseline":
        # Quantile averaging (Vincentization) of the days' sketches, by the median for
        # robustness to one odd day.
        pooled = [statistics.median(grid[i] for grid in grids) for i in range(len(QUANTILE_GRID))]
        at = {q: pooled[i] for i, q in enumerate(QUANTILE_GRID)}
        return cls(at[0.5], at[0.75] - at[0.25], at[CENTRAL_RANGE[0]], at[CENTRAL_RANGE[1]])

    @property
    def scale(self) -> float:
        """The unit a median shift is measured in: the IQR, or a wider spread if it is 0."""
        return self.iqr or (self.high - self.low) or abs(self.median) or 1.0


def _numeric_stats(median: float, iqr: float, outside: float, base: _Baseline) -> dict:
    tiny = 1e-9 * base.scale
    return {
        "median shift (in the history's IQRs)": abs(median - base.median) / base.scale,
        "inter-quartile range change": abs(math.log((iqr + tiny) / (base.iqr + tiny))),
        "share outside the history's central 90% range": outside,
    }


def _numeric_chance(
    quantiles: Callable[[Sequence[float]], np.ndarray], values: int, history_values: int
) -> dict:
    """What each statistic shows by chance alone, one standard error of the quantiles it reads:
    a quantile p of n `values` today against N in the history is uncertain by about
    sqrt(p (1 - p) (1/n + 1/N)) in probability (its rank's binomial spread), read back as
    values on today's own quantile curve and measured in today's own spread, so a scale change
    does not widen its own levels. A small day (a rare event's dwell time, a column most rows
    leave empty) then needs a larger change to warn or block, as the PSI's chance term does
    for categories."""
    variance = 1 / values + 1 / max(history_values, 1)
    d50, d25 = (math.sqrt(p * (1 - p) * variance) for p in (0.5, 0.25))
    probabilities = (0.5 - d50, 0.5 + d50, 0.25 - d25, 0.25 + d25, 0.75 - d25, 0.75 + d25)
    median_low, median_high, q1_low, q1_high, q3_low, q3_high = quantiles(
        np.clip(probabilities, 0.0, 1.0)
    )
    low, q1, median, q3, high = quantiles((CENTRAL_RANGE[0], 0.25, 0.5, 0.75, CENTRAL_RANGE[1]))
    scale = _Baseline(median, q3 - q1, low, high).scale
    tiny = 1e-9 * scale
    # Half the log ratio of the widest to the narrowest IQR the quartiles' spreads allow.
    iqr_change = 0.5 * math.log((q3_high - q1_low + tiny) / (max(q3_low - q1_high, 0.0) + tiny))
    central = CENTRAL_RANGE[1] - CENTRAL_RANGE[0]
    return {
        "median shift (in the history's IQRs)": (median_high - median_low) / 2 / scale,
        "inter-quartile range change": iqr_change,
        # The share outside the central range is 1 - central on a clean day, give or take its
        # binomial spread.
        "share outside the history's central 90% range": (1 - central)
        + math.sqrt(central * (1 - central) * variance),
    }


def _grid_outside(grid: Sequence[float], low: float, high: float) -> float:
    """A history day's share of values strictly outside [low, high], read from its sketch."""
    values = np.asarray(grid)
    probabilities = np.asarray(QUANTILE_GRID)
    # Tied grid values (a discrete column): below `low` counts the smallest probability at a
    # value, above `high` the largest, so ties never count as outside.
    below = np.interp(low, *_unique(values, probabilities, first=True))
    at_or_below_high = np.interp(high, *_unique(values, probabilities, first=False))
    return float(below + 1.0 - at_or_below_high)


def _unique(values: np.ndarray, probabilities: np.ndarray, first: bool):
    unique, index = np.unique(values if first else values[::-1], return_index=True)
    chosen = probabilities[index] if first else probabilities[::-1][index]
    return unique, chosen


def _grid_stats(grid: Sequence[float], base: _Baseline) -> dict:
    at = {q: grid[i] for i, q in enumerate(QUANTILE_GRID)}
    return _numeric_stats(
        at[0.5], at[0.75] - at[0.25], _grid_outside(grid, base.low, base.high), base
    )


# --- gates ------------------------------------------------------------------------------------


def category_stability(
    table: Columns,
    history: Sequence[tuple[str, Mapping]],
    columns: Sequence[str],
    thresholds: DistributionThresholds,
) -> GateResult:
    """Each watched categorical column keeps its mix of values: population stability index
    against the pooled shares of the trailing passed days (a vocabulary change, a collapse
    onto one value, a remapped code)."""
    findings, days = [], set()
    for name in columns:
        past = _history_for(history, "categories", name)
        if len(past) < thresholds.min_history:
            continue
        days.update(day for day, _ in past)
        entries = [entry for _, entry in past]
        today = _category_counts(table, name)
        value = _psi_of([today], entries)
        noise = _leave_one_out(entries, lambda day, others: _psi_of([day], others))
        # A small day of a wide vocabulary shows PSI by chance alone: about (K - 1) x (1/n +
        # 1/N) for K values, n rows today and N in the history (its chi-square expectation).
        (_, rows), (pooled, history_rows) = _pooled([today]), _pooled(entries)
        values = len({*today["counts"], *pooled})
        sampling = (values - 1) * (1 / max(rows, 1) + 1 / max(history_rows, 1))
        findings.append(
            _finding(
                name,
                "PSI",
                value,
                max(noise, sampling),
                thresholds.psi_moderate,
                thresholds.psi_severe,
                noise_source=(
                    f"the larger of the history's own day-over-day PSI ({noise:.3f}) and the "
                    f"PSI expected by chance of {rows} rows over {values} values"
                ),
            )
        )
    return _verdict(
        CATEGORY_STABILITY,
        findings,
        days,
        len(history),
        thresholds,
        "The mix of values of a categorical column changed: a vocabulary change (renamed or "
        "re-coded values) or a collapse onto a few values upstream. Check the upstream mapping, "
        "then re-run the partition; accept a real change by raising the PSI levels in the gate "
        "config.",
    )


def category_cardinality(
    table: Columns,
    history: Sequence[tuple[str, Mapping]],
    columns: Sequence[str],
    thresholds: DistributionThresholds,
) -> GateResult:
    """Each watched categorical column keeps about as many distinct values as its history
    (a lookup that starts returning one default value collapses it)."""
    findings, days = [], set()
    for name in columns:
        past = _history_for(history, "categories", name)
        if len(past) < thresholds.min_history:
            continue
        days.update(day for day, _ in past)
        counts = [entry["distinct"] for _, entry in past]
        distinct = len(value_counts(table, name))
        value = _distinct_log_ratio(distinct, counts)
        noise = _leave_one_out(counts, _distinct_log_ratio)
        findings.append(
            _finding(
                name,
                "distinct-count change",
                value,
                noise,
                thresholds.distinct_moderate,
                thresholds.distinct_severe,
                show=_factor,
                detail=f" ({distinct} distinct values vs usual {statistics.median(counts):g})",
            )
        )
    return _verdict(
        CATEGORY_CARDINALITY,
        findings,
        days,
        len(history),
        thresholds,
        "A categorical column has far fewer (or more) distinct values than usual: a lookup or "
        "join upstream returns a default, or a free-text value leaked in. Fix it upstream, then "
        "re-run the partition.",
    )


def numeric_scale(
    table: Columns,
    history: Sequence[tuple[str, Mapping]],
    columns: Sequence[str],
    thresholds: DistributionThresholds,
) -> GateResult:
    """Each watched numeric column keeps its location and scale: the median's shift in units
    of the history's inter-quartile range, the inter-quartile range's change by a factor, and
    the share of values outside the history's central 90 % range (a unit or scale change that
    keeps every value inside its allowed range)."""
    findings, days = [], set()
    levels = {
        "median shift (in the history's IQRs)": (
            thresholds.median_shift_moderate,
            thresholds.median_shift_severe,
            _number,
        ),
        "inter-quartile range change": (
            thresholds.spread_moderate,
            thresholds.spread_severe,
            _factor,
        ),
        "share outside the history's central 90% range": (
            thresholds.outside_moderate,
            thresholds.outside_severe,
            _share,
        ),
    }
    for name in columns:
        past = _history_for(history, "numeric", name)
        values = _finite_values(table.column(name))
        if len(past) < thresholds.min_history or not len(values):
            continue
        days.update(day for day, _ in past)
        grids = [entry["grid"] for _, entry in past]
        base = _Baseline.of(grids)
        quantiles = mid_quantile_curve(values)
        q1, median, q3 = quantiles((0.25, 0.5, 0.75))
        outside = float(np.mean((values < base.low) | (values > base.high)))
        today = _numeric_stats(float(median), float(q3 - q1), outside, base)
        noise = {statistic: 0.0 for statistic in today}
        for i, grid in enumerate(grids):
            others = _Baseline.of([*grids[:i], *grids[i + 1 :]])
            for statistic, value in _grid_stats(grid, others).items():
                noise[statistic] = max(noise[statistic], value)
        history_values = sum(entry.get("count") or 0 for _, entry in past)
        chance = _numeric_chance(quantiles, len(values), history_values)
        for statistic, value in today.items():
            moderate, severe, show = levels[statistic]
            findings.append(
                _finding(
                    name,
                    statistic,
                    value,
                    max(noise[statistic], chance[statistic]),
                    moderate,
                    severe,
                    show,
                    noise_source=(
                        f"the larger of the history's own day-over-day {statistic} "
                        f"({show(noise[statistic])}) and the {statistic} expected by chance "
                        f"of {len(values)} values"
                    ),
                )
            )
    return _verdict(
        NUMERIC_SCALE,
        findings,
        days,
        len(history),
        thresholds,
        "A numeric column changed its location or scale while its values may all stay in "
        "range: a unit change (cents for units, minutes for seconds), a currency or a scaling "
        "bug upstream. Fix it upstream, then re-run the partition; accept a real change by "
        "raising the levels in the gate config.",
    )


def _finding(
    column: str,
    statistic: str,
    value: float,
    noise: float,
    moderate: Level,
    severe: Level,
    show: Callable[[float], str] = _number,
    detail: str = "",
    noise_source: str = "",
) -> Finding:
    return Finding(
        column=column,
        statistic=statistic,
        value=value,
        moderate=moderate.threshold(noise),
        severe=max(severe.threshold(noise), moderate.threshold(noise)),
        noise=noise,
        show=show,
        detail=detail,
        noise_source=noise_source,
    )


def _verdict(
    gate: str,
    findings: Sequence[Finding],
    days: set[str],
    history_days: int,
    thresholds: DistributionThresholds,
    advice: str,
) -> GateResult:
    blocking = Severity.WARN if gate in thresholds.warn_only else Severity.ERROR
    if not findings:
        waiting = _waiting(history_days, thresholds) or "no watched column has enough history"
        return GateResult(gate, True, "-", waiting, "no baseline yet", blocking)
    severe = [f for f in findings if f.level == "severe"]
    moderate = [f for f in findings if f.level == "moderate"]
    # The finding closest to (or furthest past) its blocking threshold represents the gate.
    worst = max(findings, key=lambda f: f.value / f.severe if f.severe else math.inf)
    compared = f"compared with {_days_text(days)}"
    observed = "; ".join(f.describe() for f in (severe + moderate) or [worst])
    threshold = (
        f"each statistic warns above max(floor, moderate factor x the history's own "
        f"day-over-day spread) and blocks above max(floor, severe factor x it); {compared}"
    )
    if severe:
        message = (
            f"Severe drift ({compared}): " + "; ".join(f.describe() for f in severe) + ". " + advice
        )
    elif moderate:
        message = (
            f"Moderate drift, reported without blocking ({compared}): "
            + "; ".join(f.describe() for f in moderate)
            + ". Worth a look before it grows."
        )
    else:
        message = f"distributions as usual ({compared}); closest: {worst.describe()}"
    return GateResult(
        gate=gate,
        passed=not severe and not moderate,
        observed=observed,
        threshold=threshold,
        message=message,
        severity=blocking if severe else Severity.WARN if moderate else blocking,
        value=worst.value,
        limit=worst.severe,
    )
