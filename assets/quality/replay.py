"""The content-identity gate: a day whose rows are another recent day's rows delivered again.

A replayed delivery gets fresh ids and times moved to the new day, so every row-level gate and
the within-day duplicate gate pass. What stays the same is the content: the content columns
and the time of day. Each row is hashed on exactly that (the identity key and the date part of
the timestamp left out), and a passed day keeps a bottom-k sketch of its distinct row hashes
(the k smallest, a few KB), from which the share of one day's rows found in another is
estimated without keeping either day's rows. No Dagster here.
"""

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.quality.gates import GateResult, Severity

GATE = "content_replay"
PROFILE_KEY = "content_sketch"
# Sketch size: the estimated share of repeated rows has a standard error of about
# sqrt(share x (1 - share) / SKETCH_SIZE), under 0.03 at any share.
SKETCH_SIZE = 256
# Hashes are kept to 62 bits so every JSON reader holds them exactly as integers.
_MASK = np.uint64((1 << 62) - 1)
_NULL = np.uint64(0x9E3779B97F4A7C15)
_UNITS_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


@dataclass(frozen=True)
class ReplayThresholds:
    """Share of the day's distinct rows found in one earlier day: warn above, block above."""

    moderate_share: float = 0.05
    severe_share: float = 0.2
    warn_only: bool = False


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads every input bit over the whole word."""
    with np.errstate(over="ignore"):
        values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _column_words(column: pa.ChunkedArray) -> np.ndarray:
    """One 64-bit word per row that is the same for the same value in any process."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        words = pc.fill_null(column.cast(pa.int64()), 0).to_numpy().astype(np.uint64)
    elif pa.types.is_floating(kind):
        words = pc.fill_null(column.cast(pa.float64()), 0.0).to_numpy().view(np.uint64)
    else:
        # Strings and anything else: hash each distinct value once, then map the rows to it.
        encoded = column.cast(pa.string()).dictionary_encode()
        dictionary = np.array(
            [_stable_hash(value) for value in encoded.dictionary.to_pylist()], dtype=np.uint64
        )
        indices = pc.fill_null(encoded.indices, 0).to_numpy().astype(np.int64)
        words = dictionary[indices] if len(dictionary) else np.zeros(len(column), np.uint64)
    return np.where(nulls, _NULL, words)


def _time_of_day(column: pa.ChunkedArray) -> np.ndarray:
    kind = column.type
    if not pa.types.is_timestamp(kind):
        raise TypeError(f"the time column must be a timestamp, not {kind}")
    ticks = pc.fill_null(column.cast(pa.int64()), 0).to_numpy()
    return (ticks % _UNITS_PER_DAY[kind.unit]).astype(np.uint64)


def row_hashes(table: pa.Table, content_columns: Sequence[str], time_column: str) -> np.ndarray:
    """One 62-bit hash per row of (time of day, content columns)."""
    digest = _mix(_time_of_day(table.column(time_column)) + np.uint64(1))
    with np.errstate(over="ignore"):
        for name in content_columns:
            digest = _mix(digest * np.uint64(31) + _column_words(table.column(name)))
    return digest & _MASK


def content_sketch(table: pa.Table, content_columns: Sequence[str], time_column: str) -> dict:
    """What a passed day keeps for this gate: its distinct row count and smallest hashes."""
    return _sketch(row_hashes(table, content_columns, time_column))


def batched_content_sketch(
    batches: Iterable[pa.RecordBatch], rows: int, content_columns: Sequence[str], time_column: str
) -> dict:
    """content_sketch of a table of `rows` rows read in record batches: the batches' row hashes
    fill one array, 8 bytes a row, the only thing of the day held."""
    hashes = np.empty(rows, np.uint64)
    filled = 0
    for batch in batches:
        hashes[filled : filled + batch.num_rows] = row_hashes(batch, content_columns, time_column)
        filled += batch.num_rows
    return _sketch(hashes[:filled])


def _sketch(hashes: np.ndarray) -> dict:
    """The distinct count and smallest distinct values of `hashes`, sorted in place (no copy)."""
    if not len(hashes):
        return {"distinct_rows": 0, "smallest": []}
    hashes.sort()
    distinct = 1 + int(np.count_nonzero(hashes[1:] != hashes[:-1]))
    # The smallest distinct values lie in a prefix; widen it until it holds enough of them.
    prefix = SKETCH_SIZE
    smallest = np.unique(hashes[:prefix])
    while len(smallest) < SKETCH_SIZE and prefix < len(hashes):
        prefix *= 4
        smallest = np.unique(hashes[:prefix])
    return {"distinct_rows": distinct, "smallest": smallest[:SKETCH_SIZE].tolist()}


def repeated_share(today: Mapping, other: Mapping) -> float:
    """Estimated share of today's distinct rows that also occur in `other` (bottom-k
    estimator of the Jaccard index, turned into containment with both days' sizes)."""
    mine, theirs = set(today["smallest"]), set(other["smallest"])
    if not mine or not theirs:
        return 0.0
    union = sorted(mine | theirs)[:SKETCH_SIZE]
    both = sum(1 for value in union if value in mine and value in theirs)
    jaccard = both / len(union)
    size, other_size = today["distinct_rows"], other["distinct_rows"]
    return min(1.0, jaccard * (size + other_size) / ((1 + jaccard) * max(size, 1)))


def content_replay(
    table: pa.Table,
    history: Sequence[tuple[str, Mapping]],
    content_columns: Sequence[str],
    time_column: str,
    thresholds: ReplayThresholds,
) -> GateResult:
    """Today's rows are not another recent day's rows again (a replayed delivery with fresh
    ids and shifted times)."""
    today = content_sketch(table, content_columns, time_column)
    return sketched_content_replay(today, history, content_columns, time_column, thresholds)


def sketched_content_replay(
    today: Mapping,
    history: Sequence[tuple[str, Mapping]],
    content_columns: Sequence[str],
    time_column: str,
    thresholds: ReplayThresholds,
) -> GateResult:
    """content_replay from today's sketch (`content_sketch`), computed once for the gate and
    the profile."""
    blocking = Severity.WARN if thresholds.warn_only else Severity.ERROR
    sketches = [(day, p[PROFILE_KEY]) for day, p in history if p.get(PROFILE_KEY)]
    rule = (
        f"warns above {thresholds.moderate_share:.0%}, blocks above "
        f"{thresholds.severe_share:.0%} of the day's distinct rows found in one earlier day, "
        f"compared on ({time_column} time of day, {', '.join(content_columns)})"
    )
    if not sketches:
        return GateResult(
            GATE, True, "-", f"{rule}; no earlier passed day yet", "no baseline yet", blocking
        )
    shares = {day: repeated_share(today, sketch) for day, sketch in sketches}
    day = max(shares, key=shares.get)
    share = shares[day]
    days = sorted(shares)
    observed = (
        f"{share:.1%} of the day's {today['distinct_rows']} distinct rows repeat {day} "
        f"(the most similar of {len(days)} passed days, {days[0]} to {days[-1]})"
    )
    if share > thresholds.severe_share:
        level, message = (
            blocking,
            f"This day repeats {day}: {observed}; at most {thresholds.severe_share:.0%} would "
            "have passed. The upstream delivered an earlier day's content again under new ids "
            "and times. Have the upstream deliver this day's own data, then re-run the partition.",
        )
    elif share > thresholds.moderate_share:
        level, message = (
            Severity.WARN,
            f"Part of this day repeats {day}: {observed}; reported without blocking (blocks "
            f"above {thresholds.severe_share:.0%}). Check the upstream for a partial replay.",
        )
    else:
        level, message = blocking, f"no earlier day's content repeated ({observed})"
    return GateResult(
        gate=GATE,
        passed=share <= thresholds.moderate_share,
        observed=observed,
        threshold=rule,
        message=message,
        severity=level,
        value=share,
        limit=thresholds.severe_share
        if share > thresholds.moderate_share
        else (thresholds.moderate_share),
    )
