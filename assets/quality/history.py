"""Gates that judge a partition against its own history: what a passed day usually looks like.

Each passed partition's report keeps a small profile of its table (hourly shares, event-kind
mix, category shares, numeric quantiles, label rate). A new partition is compared with the
median of the trailing passed profiles, the way `volume` compares row counts, so a defect that
keeps the row count plausible (a broken logger of one event kind, a late tail, a drifted column)
still shows. With too little history a gate passes and says so: there is nothing to compare yet.
The columns each gate judges are its arguments (the source contract's, for the source asset).
"""

import math
import statistics
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from assets.quality.columns import Columns, value_counts
from assets.quality.gates import GateResult, GateThresholds

QUANTILES = (0.1, 0.5, 0.9)
# event_mix judges an event kind only when today should hold at least this many of it.
EVENT_MIX_MIN_EXPECTED = 30
# Shares below this are treated as this in the PSI, so a category seen once does not explode.
_PSI_FLOOR = 1e-4


def _shares(events: Columns, name: str) -> dict[str, float]:
    counts = value_counts(events, name).to_pylist()
    total = sum(entry["counts"] for entry in counts) or 1
    return {str(entry["values"]): entry["counts"] / total for entry in counts}


def _quantiles(column: pa.ChunkedArray) -> list[float] | None:
    finite = column.filter(pc.is_finite(column)) if len(column) else column
    if len(finite.drop_null()) == 0:
        return None
    return [float(q) for q in pc.quantile(finite, q=list(QUANTILES)).to_pylist()]


def events_profile(
    events: Columns, time_column: str, categorical: Sequence[str], numeric: Sequence[str]
) -> dict:
    """What the gates below remember about a passed day of source rows: the hourly shares of
    `time_column`, the shares of each `categorical` column (the event-kind column among them)
    and the quantiles of each `numeric` one."""
    hours = pc.hour(events.column(time_column)) if events.num_rows else pa.array([], pa.int64())
    hour_counts = [0] * 24
    for entry in pc.value_counts(hours).to_pylist():
        hour_counts[entry["values"]] = entry["counts"]
    total = sum(hour_counts) or 1
    return {
        "hour_share": [count / total for count in hour_counts],
        "categories": {name: _shares(events, name) for name in categorical},
        "quantiles": {name: _quantiles(events.column(name)) for name in numeric},
    }


def kind_rate(events: Columns, kind_column: str, positive: str, exposure: str) -> float | None:
    """Rows of the `positive` kind per row of the `exposure` kind (None: no exposures), the
    label rate the source delivers before any feature is computed."""
    # Keyed as the shares are (str), so a kind column of another type compares alike.
    counts = {
        str(entry["values"]): entry["counts"]
        for entry in value_counts(events, kind_column).to_pylist()
    }
    exposures, positives = counts.get(exposure, 0), counts.get(positive, 0)
    return positives / exposures if exposures else None


def usual_hour_share(history: Sequence[Mapping]) -> list[float] | None:
    """Median share of the day's events per hour over the trailing profiles (None: no history)."""
    shares = [profile["hour_share"] for profile in history if "hour_share" in profile]
    if not shares:
        return None
    return [statistics.median(day[hour] for day in shares) for hour in range(24)]


def _history_note(history: Sequence[Mapping], key: str, thresholds: GateThresholds) -> str | None:
    count = sum(1 for profile in history if profile.get(key) is not None)
    if count >= thresholds.volume_min_history:
        return None
    return f"not enough history yet ({count} of {thresholds.volume_min_history} passed days)"


def label_rate(
    rate: float | None, history: Sequence[Mapping], thresholds: GateThresholds
) -> GateResult:
    """The day's positive-label rate (None: no rows) stays within a band around its trailing
    median (a broken logger of the positive events: exposures intact, every label 0)."""
    observed = "no rows" if rate is None else f"label rate {rate:.4f}"
    waiting = _history_note(history, "label_rate", thresholds)
    if waiting:
        return _result("label_rate", True, observed, waiting, "no baseline yet", thresholds)
    rates = [p["label_rate"] for p in history if p.get("label_rate") is not None]
    median = statistics.median(rates)
    band_low, band_high = thresholds.label_rate_band_low, thresholds.label_rate_band_high
    low, high = median * band_low, median * band_high
    passed = rate is not None and low <= rate <= high
    return _result(
        "label_rate",
        passed,
        observed,
        f"[{low:.4f}, {high:.4f}] = [{band_low}, {band_high}] x the median {median:.4f} over "
        f"the last {len(rates)} passed days",
        "label rate within its usual band"
        if passed
        else f"The share of positive labels ({observed}) left its band [{low:.4f}, {high:.4f}] "
        f"around the trailing median {median:.4f} over the last {len(rates)} passed days: the "
        "positive events behind this day's labels are missing or duplicated upstream. Check "
        "their logging, then re-run the partition.",
        thresholds,
        value=rate,
        limit=low if rate is None or rate < median else high,
    )


def event_mix(
    events: Columns,
    kind_column: str,
    kinds: Sequence[str],
    history: Sequence[Mapping],
    thresholds: GateThresholds,
) -> GateResult:
    """Every declared event kind (`kinds`, the values of `kind_column`) keeps its usual share
    of the day: the rarer kinds vanish when a logger breaks, while the commonest alone keeps
    the volume plausible."""
    shares = _shares(events, kind_column)
    observed = ", ".join(f"{k}={v:.3f}" for k, v in sorted(shares.items())) or "no events"
    waiting = _history_note(history, "categories", thresholds)
    if waiting:
        return _result("event_mix", True, observed, waiting, "no baseline yet", thresholds)
    days = [p["categories"][kind_column] for p in history if p.get("categories")]
    usual = _median_shares(days)
    # A kind expected only a handful of times today varies by chance more than the band allows
    # (5 of a rare kind one day, 2 the next): judge the kinds with enough expected events.
    usual = {
        kind: share
        for kind, share in usual.items()
        if kind in kinds and share * events.num_rows >= EVENT_MIX_MIN_EXPECTED
    }
    low, high = thresholds.event_mix_band_low, thresholds.event_mix_band_high
    ratios = {kind: shares.get(kind, 0.0) / share for kind, share in usual.items() if share}
    worst_ratio = max(ratios.values(), key=lambda r: abs(math.log(max(r, 1e-9))), default=1.0)
    off = {
        kind: shares.get(kind, 0.0)
        for kind, share in usual.items()
        if not low * share <= shares.get(kind, 0.0) <= high * share
    }
    return _result(
        "event_mix",
        not off,
        observed,
        f"each type expected >= {EVENT_MIX_MIN_EXPECTED} times within [{low}, {high}] x its "
        f"median share over the last {len(days)} passed days ("
        + ", ".join(f"{k}={v:.3f}" for k, v in sorted(usual.items()))
        + ")",
        "event types in their usual proportions"
        if not off
        else "Event types out of proportion: "
        + ", ".join(f"{k} {v:.3f} vs usual {usual[k]:.3f}" for k, v in sorted(off.items()))
        + f" (usual: the median share over the last {len(days)} passed days; band [{low}, "
        f"{high}] x usual). An upstream logger stopped (or doubled) one kind of event; fix it, "
        "then re-run.",
        thresholds,
        # The type furthest from its usual share, as a multiple of it (1 = usual).
        value=worst_ratio,
        limit=low if worst_ratio < 1 else high,
    )


def category_drift(
    events: Columns,
    columns: Sequence[str],
    history: Sequence[Mapping],
    thresholds: GateThresholds,
) -> GateResult:
    """Population stability index of each watched categorical column against its usual shares."""
    waiting = _history_note(history, "categories", thresholds)
    if waiting:
        return _result("category_drift", True, "-", waiting, "no baseline yet", thresholds)
    psi = {}
    days = [p["categories"] for p in history if p.get("categories")]
    for name in columns:
        usual = _median_shares([day[name] for day in days])
        psi[name] = _psi(_shares(events, name), usual)
    worst = max(psi, key=psi.get)
    over = {name: value for name, value in psi.items() if value > thresholds.max_psi}
    return _result(
        "category_drift",
        not over,
        ", ".join(f"{name} PSI={value:.3f}" for name, value in psi.items()),
        f"PSI <= {thresholds.max_psi} against the median shares over the last {len(days)} "
        "passed days",
        f"categories stable (largest PSI {worst}={psi[worst]:.3f})"
        if not over
        else "Categorical drift in "
        + ", ".join(f"{name} (PSI {value:.3f})" for name, value in sorted(over.items()))
        + f" against the median shares over the last {len(days)} passed days (PSI <= "
        f"{thresholds.max_psi}): the mix of values changed sharply. Check the upstream mapping; "
        "accept a real change with max_psi, or keep it warn-only.",
        thresholds,
        value=psi[worst],
        limit=thresholds.max_psi,
    )


def numeric_drift(
    events: Columns,
    columns: Sequence[str],
    history: Sequence[Mapping],
    thresholds: GateThresholds,
) -> GateResult:
    """The 10th, 50th and 90th percentiles of each watched numeric column stay near their
    trailing medians (relative shift)."""
    waiting = _history_note(history, "quantiles", thresholds)
    if waiting:
        return _result("numeric_drift", True, "-", waiting, "no baseline yet", thresholds)
    shifts, observed = {}, []
    days = sum(1 for p in history if p.get("quantiles"))
    for name in columns:
        now = _quantiles(events.column(name))
        past = [p["quantiles"][name] for p in history if p.get("quantiles", {}).get(name)]
        if now is None or not past:
            continue
        usual = [statistics.median(day[i] for day in past) for i in range(len(QUANTILES))]
        shift = max(abs(q - u) / max(abs(u), 1e-9) for q, u in zip(now, usual, strict=True))
        shifts[name] = shift
        observed.append(
            f"{name} p10/p50/p90 {'/'.join(f'{q:.2f}' for q in now)} vs usual "
            f"{'/'.join(f'{u:.2f}' for u in usual)}"
        )
    over = {name: value for name, value in shifts.items() if value > thresholds.max_quantile_shift}
    return _result(
        "numeric_drift",
        not over,
        "; ".join(observed) or "no numeric values",
        f"each percentile within {thresholds.max_quantile_shift:.0%} of its median over the "
        f"last {days} passed days",
        "numeric distributions stable"
        if not over
        else "Numeric drift in "
        + ", ".join(f"{name} (shift {value:.0%})" for name, value in sorted(over.items()))
        + ": a unit, currency or scaling change upstream? Accept a real change with "
        "max_quantile_shift, or keep it warn-only.",
        thresholds,
        value=max(shifts.values(), default=0.0),
        limit=thresholds.max_quantile_shift,
    )


def _median_shares(days: Sequence[Mapping[str, float]]) -> dict[str, float]:
    keys = {key for day in days for key in day}
    return {key: statistics.median(day.get(key, 0.0) for day in days) for key in keys}


def _psi(actual: Mapping[str, float], expected: Mapping[str, float]) -> float:
    total = 0.0
    for key in {*actual, *expected}:
        a = max(actual.get(key, 0.0), _PSI_FLOOR)
        e = max(expected.get(key, 0.0), _PSI_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def _result(
    gate: str,
    passed: bool,
    observed: str,
    threshold: str,
    message: str,
    thresholds: GateThresholds,
    value: float | None = None,
    limit: float | None = None,
) -> GateResult:
    return GateResult(
        gate=gate,
        passed=passed,
        observed=observed,
        threshold=threshold,
        message=message,
        severity=thresholds.severity(gate),
        value=value,
        limit=limit,
    )
