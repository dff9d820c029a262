"""Data-quality gates: pure functions from a table (and context) to a pass/fail verdict.

Each gate names what it observed and the threshold it compared against, so a blocked partition
explains itself. Severity ERROR blocks publication; WARN only reports. No Dagster here.
"""

import datetime as dt
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import pyarrow as pa
import pyarrow.compute as pc

from assets.quality.tally import TableTally


class Severity(StrEnum):
    ERROR = "ERROR"
    WARN = "WARN"


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    observed: str
    threshold: str
    message: str
    severity: Severity = Severity.ERROR
    # The same verdict as numbers, so the UI can plot it per day: what was measured and the
    # bound it was compared with (for a band, the bound nearest the value).
    value: float | None = None
    limit: float | None = None

    @property
    def blocks(self) -> bool:
        return not self.passed and self.severity == Severity.ERROR

    def to_dict(self) -> dict:
        return {**asdict(self), "severity": str(self.severity)}


@dataclass(frozen=True)
class ValueRange:
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class GateThresholds:
    """Defaults for every gate; the assets expose them as run config."""

    volume_min_rows: int = 1
    volume_band_low: float = 0.5
    volume_band_high: float = 2.0
    volume_history: int = 7
    volume_min_history: int = 3
    required_hours: int = 24
    min_hour_share_fraction: float = 0.25
    max_null_rate: Mapping[str, float] = field(default_factory=dict)
    value_ranges: Mapping[str, ValueRange] = field(default_factory=dict)
    max_repeated_share: float = 0.005
    label_rate_band_low: float = 0.5
    label_rate_band_high: float = 2.0
    event_mix_band_low: float = 0.5
    event_mix_band_high: float = 2.0
    max_psi: float = 0.25
    max_quantile_shift: float = 0.5
    warn_only: frozenset[str] = frozenset()
    blocking_drift: frozenset[str] = frozenset()

    def severity(self, gate: str) -> Severity:
        if gate in self.warn_only:
            return Severity.WARN
        if gate in DRIFT_GATES and gate not in self.blocking_drift:
            return Severity.WARN
        return Severity.ERROR


# completeness judges an hour by its share of the day only when it should hold this many events.
COMPLETENESS_MIN_EXPECTED = 20

# Distribution drift is worth a look, not a stop, unless a team decides otherwise per gate.
DRIFT_GATES = frozenset({"category_drift", "numeric_drift"})


def schema_drift(schema: pa.Schema, valued: Collection[str], expected: pa.Schema) -> list[str]:
    """Each difference from the expected columns; `valued` names the columns holding a value
    (a column with none is not typed, so its type is not judged)."""
    names = set(schema.names)
    missing = [name for name in expected.names if name not in names]
    unexpected = [name for name in schema.names if name not in expected.names]
    retyped = [
        f"{f.name}: expected {f.type}, got {schema.field(f.name).type}"
        for f in expected
        if f.name in names and schema.field(f.name).type != f.type and f.name in valued
    ]
    diff = (
        [f"missing column {n}" for n in missing]
        + [f"unexpected column {n}" for n in unexpected]
        + retyped
    )
    return diff


def schema_contract(
    schema: pa.Schema, valued: Collection[str], expected: pa.Schema, thresholds: GateThresholds
) -> GateResult:
    """Exact column names and Arrow types, from a table's or a stream's schema and the columns
    that held a value: an all-null column's type is not judged here (SQLite cannot type it) but
    by the null-rate gate."""
    diff = schema_drift(schema, valued, expected)
    return GateResult(
        gate="schema_contract",
        passed=not diff,
        observed="; ".join(diff) or "columns and types match",
        threshold=f"{len(expected)} columns: {', '.join(expected.names)}",
        message=(
            "Schema drift: " + "; ".join(diff) + ". Fix the upstream table or update the "
            "contract (contract/source.py / assets/features/logic.py) "
            "deliberately."
            if diff
            else "schema matches the contract"
        ),
        severity=thresholds.severity("schema_contract"),
        value=len(diff),
        limit=0,
    )


def volume(rows: int, history: Sequence[int], thresholds: GateThresholds) -> GateResult:
    """Rows within a band around the median of the trailing passed partitions.

    With fewer than `volume_min_history` earlier partitions there is no baseline yet: only the
    absolute minimum applies.
    """
    if rows < thresholds.volume_min_rows:
        return GateResult(
            gate="volume",
            passed=False,
            observed=f"{rows} rows",
            threshold=f">= {thresholds.volume_min_rows} rows",
            message=f"Only {rows} rows; check that the upstream load for this day ran.",
            severity=thresholds.severity("volume"),
            value=rows,
            limit=thresholds.volume_min_rows,
        )
    if len(history) < thresholds.volume_min_history:
        return GateResult(
            gate="volume",
            passed=True,
            observed=f"{rows} rows",
            threshold=(
                f">= {thresholds.volume_min_rows} rows (band starts after "
                f"{thresholds.volume_min_history} partitions; {len(history)} so far)"
            ),
            message="not enough history for a band yet",
            severity=thresholds.severity("volume"),
            value=rows,
            limit=thresholds.volume_min_rows,
        )
    median = statistics.median(history)
    low, high = median * thresholds.volume_band_low, median * thresholds.volume_band_high
    passed = low <= rows <= high
    return GateResult(
        gate="volume",
        passed=passed,
        observed=f"{rows} rows",
        threshold=f"[{low:.0f}, {high:.0f}] rows around median {median:.0f} of {len(history)}",
        message=(
            "within the band"
            if passed
            else f"{rows} rows is outside [{low:.0f}, {high:.0f}]; compare with the upstream "
            "load, or widen volume_band_low/high if the change is real."
        ),
        severity=thresholds.severity("volume"),
        value=rows,
        limit=low if rows < (low + high) / 2 else high,
    )


def completeness(
    events: pa.Table,
    time_column: str,
    thresholds: GateThresholds,
    usual_hour_share: Sequence[float] | None = None,
    history_days: int = 0,
) -> GateResult:
    """Every hour of the day holds data (the 18-of-24-hours incident). Once there is history
    (`usual_hour_share`, the median share of the day per hour over `history_days` passed days),
    an hour counts as present only with at least `min_hour_share_fraction` of its usual share
    of the day's events: a late tail with a trickle of rows per hour is still missing.
    `time_column` is the rows' UTC timestamp."""
    counts = [0] * 24
    if events.num_rows:
        for entry in pc.value_counts(pc.hour(events.column(time_column))).to_pylist():
            counts[entry["values"]] = entry["counts"]
    total = sum(counts) or 1
    fraction = thresholds.min_hour_share_fraction
    if usual_hour_share is None:
        present = [hour for hour in range(24) if counts[hour]]
        rule = "hours with events"
    else:
        # An hour expected to hold only a few events varies by chance more than the fraction
        # allows: there, any event counts, as without history.
        present = [
            hour
            for hour in range(24)
            if counts[hour]
            and (
                usual_hour_share[hour] * total < COMPLETENESS_MIN_EXPECTED
                or counts[hour] / total >= fraction * usual_hour_share[hour]
            )
        ]
        rule = (
            f"hours with >= {fraction:.0%} of their usual share of the day's events (usual: the "
            f"median share per hour over the last {history_days} passed days)"
        )
    absent = sorted(set(range(24)) - set(present))
    empty = [hour for hour in absent if not counts[hour]]
    thin = [hour for hour in absent if counts[hour]]
    passed = len(present) >= thresholds.required_hours
    clauses = []
    if empty:
        clauses.append(f"No events in hours {empty} (UTC).")
    if thin and usual_hour_share is not None:
        clauses.append(
            f"Only a trickle in hours {thin} (UTC), share of the day's events vs usual over the "
            f"last {history_days} passed days: "
            + ", ".join(
                f"{hour}h {counts[hour] / total:.2%} vs {usual_hour_share[hour]:.2%}"
                for hour in thin
            )
            + f" (an hour needs >= {fraction:.0%} of its usual share)."
        )
    clauses.append(
        "The day is incomplete upstream. Wait for the load to finish, then re-run this partition."
    )
    return GateResult(
        gate="completeness",
        passed=passed,
        observed=f"{len(present)} of 24 hours",
        threshold=f">= {thresholds.required_hours} {rule}",
        message="all required hours present" if passed else " ".join(clauses),
        severity=thresholds.severity("completeness"),
        value=len(present),
        limit=thresholds.required_hours,
    )


def watermark(
    loaded_through: dt.datetime | None, day_end: dt.datetime, thresholds: GateThresholds
) -> GateResult:
    """The upstream promises it has loaded everything up to the end of the day."""
    passed = loaded_through is not None and loaded_through >= day_end
    return GateResult(
        gate="watermark",
        passed=passed,
        observed=f"loaded through {loaded_through.isoformat() if loaded_through else 'never'}",
        threshold=f">= {day_end.isoformat()}",
        message=(
            "upstream load covers the whole day"
            if passed
            else "The upstream watermark stops before the end of the day: the data may still "
            "be arriving. The completeness sensor requests the run once it covers the day."
        ),
        severity=thresholds.severity("watermark"),
        # Hours of the day the upstream has loaded (24 = the whole day).
        value=(
            min(max((loaded_through - day_end).total_seconds() / 3600 + 24, 0), 24)
            if loaded_through
            else 0
        ),
        limit=24,
    )


def null_rate(table: pa.Table, thresholds: GateThresholds) -> GateResult:
    """Per-column share of nulls against its maximum (0 for columns without a threshold)."""
    return tallied_null_rate(TableTally.of_table(table, {}), thresholds)


def tallied_null_rate(tally: TableTally, thresholds: GateThresholds) -> GateResult:
    """null_rate from a tally of the table's batches."""
    rows = max(tally.rows, 1)
    rates = {name: nulls / rows for name, nulls in tally.nulls.items()}
    over = {
        name: rate for name, rate in rates.items() if rate > thresholds.max_null_rate.get(name, 0.0)
    }
    worst = max(over, key=over.get) if over else max(rates, key=rates.get, default="-")
    return GateResult(
        gate="null_rate",
        passed=not over,
        observed=(
            ", ".join(f"{n}={r:.1%}" for n, r in sorted(over.items()))
            if over
            else f"max {worst}={rates.get(worst, 0):.1%}"
        ),
        threshold=", ".join(
            f"{n}<={thresholds.max_null_rate.get(n, 0.0):.0%}" for n in sorted(over or rates)
        ),
        message=(
            "null rates within limits"
            if not over
            else f"Too many nulls in {sorted(over)}; an upstream column is no longer filled."
        ),
        severity=thresholds.severity("null_rate"),
        value=rates.get(worst, 0.0),
        limit=thresholds.max_null_rate.get(worst, 0.0),
    )


def value_ranges(table: pa.Table, thresholds: GateThresholds) -> GateResult:
    """Numeric bounds and allowed categories per column; nulls are the null gate's business."""
    return tallied_value_ranges(TableTally.of_table(table, thresholds.value_ranges), thresholds)


def tallied_value_ranges(tally: TableTally, thresholds: GateThresholds) -> GateResult:
    """value_ranges from a tally of the table's batches (counted with these thresholds'
    ranges)."""
    violations, invalid_values = [], 0
    # NaN compares false with every bound and is not null: count it (and infinities) as invalid
    # in every float column, whatever its configured range.
    for name, invalid in tally.non_finite.items():
        if invalid:
            invalid_values += invalid
            violations.append(
                f"{name}: {invalid} NaN or infinite values "
                f"({invalid / max(tally.rows, 1):.1%} of {tally.rows} rows)"
            )
    for name, rule in thresholds.value_ranges.items():
        if rule.allowed is not None:
            bad = tally.breaks.get((name, "outside"), 0)
            invalid_values += bad
            if bad:
                violations.append(f"{name}: {bad} values outside {list(rule.allowed)}")
            continue
        for bound, label in ((rule.minimum, "<"), (rule.maximum, ">")):
            if bound is None:
                continue
            bad = tally.breaks.get((name, label), 0)
            invalid_values += bad
            if bad:
                violations.append(f"{name}: {bad} values {label} {bound}")
    return GateResult(
        gate="value_ranges",
        passed=not violations,
        observed="; ".join(violations) or "all values in range",
        threshold="; ".join(
            [
                *(
                    f"{n} in {list(r.allowed)}"
                    if r.allowed
                    else f"{n} in [{r.minimum}, {r.maximum}]"
                    for n, r in thresholds.value_ranges.items()
                ),
                "no NaN or infinite value in any float column",
            ]
        ),
        message=(
            "values within range"
            if not violations
            else "Out-of-range values: " + "; ".join(violations) + "."
        ),
        severity=thresholds.severity("value_ranges"),
        value=invalid_values,
        limit=0,
    )


def unique_key(table: pa.Table, key: Sequence[str], thresholds: GateThresholds) -> GateResult:
    """No two rows share the primary key (the duplicated-rows incident)."""
    # One thread: a day is small, and thread start-up costs more than it saves on 2 cores.
    grouped = table.group_by(list(key), use_threads=False)
    distinct = grouped.aggregate([]).num_rows if table.num_rows else 0
    return counted_unique_key(table.num_rows, distinct, key, thresholds)


def counted_unique_key(
    rows: int, distinct: int, key: Sequence[str], thresholds: GateThresholds
) -> GateResult:
    """unique_key from the table's rows and its distinct keys (nulls one key, as a group-by
    counts them), however they were counted."""
    duplicates = rows - distinct
    return GateResult(
        gate="unique_key",
        passed=duplicates == 0,
        observed=f"{duplicates} duplicate rows of {rows}",
        threshold=f"0 duplicates of ({', '.join(key)})",
        message=(
            "primary key is unique"
            if duplicates == 0
            else f"{duplicates} rows repeat ({', '.join(key)}): the upstream was loaded twice "
            "or a join fanned out. Deduplicate upstream, then re-run this partition."
        ),
        severity=thresholds.severity("unique_key"),
        value=duplicates,
        limit=0,
    )


def repeated_events(
    events: pa.Table, content_key: Sequence[str], thresholds: GateThresholds
) -> GateResult:
    """Rows that repeat the same content under new ids: a re-delivered load that got fresh
    event ids passes `unique_key` but double counts every repeated event."""
    distinct = events.group_by(list(content_key)).aggregate([]).num_rows if events.num_rows else 0
    return counted_repeated_events(events.num_rows, distinct, content_key, thresholds)


def counted_repeated_events(
    rows: int, distinct: int, content_key: Sequence[str], thresholds: GateThresholds
) -> GateResult:
    """repeated_events from the day's rows and its distinct content keys (nulls one value),
    however they were counted."""
    repeated = rows - distinct
    share = repeated / max(rows, 1)
    passed = share <= thresholds.max_repeated_share
    return GateResult(
        gate="repeated_events",
        passed=passed,
        observed=f"{repeated} rows ({share:.1%}) repeat ({', '.join(content_key)})",
        threshold=(
            f"<= {thresholds.max_repeated_share:.1%} of the day's {rows} rows "
            "(compared with the day's own rows; no history needed)"
        ),
        message=(
            "no repeated deliveries"
            if passed
            else f"{share:.1%} of the day's rows repeat earlier rows under other ids: part of the "
            "day was loaded twice. Remove the second load upstream, then re-run this partition."
        ),
        severity=thresholds.severity("repeated_events"),
        value=share,
        limit=thresholds.max_repeated_share,
    )


def within_day(
    events: pa.Table,
    time_column: str,
    day_start: dt.datetime,
    day_end: dt.datetime,
    thresholds: GateThresholds,
) -> GateResult:
    """Rows filed under the day really happened that day (time-zone or late-load bugs)."""
    times = events.column(time_column)
    outside = (
        pc.sum(pc.or_(pc.less(times, day_start), pc.greater_equal(times, day_end))).as_py() or 0
    )
    return GateResult(
        gate="within_day",
        passed=outside == 0,
        observed=f"{outside} events outside the day",
        threshold=f"{time_column} in [{day_start.isoformat()}, {day_end.isoformat()})",
        message=(
            "all events inside the day"
            if outside == 0
            else f"{outside} events filed under this day happened outside it; check the "
            "upstream's time zone and late-arrival handling."
        ),
        severity=thresholds.severity("within_day"),
        value=outside,
        limit=0,
    )


NOT_EVALUATED = "not evaluated"


def not_evaluated(gate: str, reason: str, thresholds: GateThresholds) -> GateResult:
    """A gate that could not run counts as failed: the partition is not known to be good."""
    return GateResult(
        gate=gate,
        passed=False,
        observed=NOT_EVALUATED,
        threshold="-",
        message=f"Not evaluated because {reason}.",
        severity=thresholds.severity(gate),
    )
