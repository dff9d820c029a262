"""Pure feature computations: one day of events in, one feature table out (no Dagster here).

Outputs have fixed Arrow schemas and a deterministic row order, so the same events always
serialize to the same bytes. The example's click-stream tables are `CLICK_STREAM_FEATURES`;
`FEATURE_TABLES`, what the machinery builds assets for, names them until a team points it at
its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from assets.features.compensated import present
from assets.features.day_events import Events
from assets.features.query import SNAPSHOT_ROW, FeatureQuery, run_on_duckdb
from assets.quality.gates import ValueRange

_DATE = pa.field("feature_date", pa.date32(), nullable=False)

USER_FEATURES_SCHEMA = pa.schema(
    [
        _DATE,
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("impressions", pa.int64(), nullable=False),
        pa.field("clicks", pa.int64(), nullable=False),
        pa.field("add_to_carts", pa.int64(), nullable=False),
        pa.field("purchases", pa.int64(), nullable=False),
        pa.field("ctr", pa.float64()),
        pa.field("spend", pa.float64(), nullable=False),
        pa.field("mean_dwell_seconds", pa.float64()),
        pa.field("distinct_items", pa.int64(), nullable=False),
        pa.field("main_device", pa.string()),
        pa.field("country", pa.string()),
    ]
)

ITEM_FEATURES_SCHEMA = pa.schema(
    [
        _DATE,
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("item_category", pa.string()),
        pa.field("impressions", pa.int64(), nullable=False),
        pa.field("clicks", pa.int64(), nullable=False),
        pa.field("purchases", pa.int64(), nullable=False),
        pa.field("ctr", pa.float64()),
        pa.field("revenue", pa.float64(), nullable=False),
        pa.field("mean_price", pa.float64()),
        pa.field("distinct_users", pa.int64(), nullable=False),
    ]
)

TRAINING_EXAMPLES_SCHEMA = pa.schema(
    [
        _DATE,
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("hour_of_day", pa.int8(), nullable=False),
        pa.field("device", pa.string()),
        pa.field("country", pa.string()),
        pa.field("item_category", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("label", pa.int8(), nullable=False),
    ]
)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator; NaN (null in the table) where the denominator is 0."""
    out = np.full(len(numerator), np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def _mean(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """sums / counts; NaN for a group without any value."""
    return np.divide(sums, counts, out=np.full(len(sums), np.nan), where=counts > 0)


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    return column.to_numpy(zero_copy_only=False)


def _table(
    day: dt.date, schema: pa.Schema, columns: dict[str, np.ndarray | pa.Array | pa.ChunkedArray]
) -> pa.Table:
    """The feature table in schema order, NaN stored as null, one row per key already sorted."""
    rows = len(next(iter(columns.values())))
    arrays = {"feature_date": pa.repeat(pa.scalar(day, pa.date32()), rows)}
    for name in schema.names[1:]:
        column, type_ = columns[name], schema.field(name).type
        if isinstance(column, pa.Array | pa.ChunkedArray):
            arrays[name] = column.cast(type_)
        else:
            arrays[name] = pa.array(column, type_, from_pandas=True)
    return pa.table(arrays, schema=schema)


def _kind(kind: str) -> str:
    return f"event_type = '{kind}'"


def _purchase_price() -> str:
    """The price of a purchase, null for any other event (what spend and revenue add up; a sum
    skips a null, so only the day's purchases are summed)."""
    return f"CASE WHEN {_kind('purchase')} THEN price END"


# Per key and combination of the mode columns' values, how many of the day's rows hold it.
MODE_FREQUENCIES = "mode_frequencies"


def _mode_frequencies(key: str, columns: list[str]) -> str:
    """The day grouped once by key and every mode column: each mode is read from these counts
    rather than from a grouping of the day's rows of its own (a second mode of the same key
    costs a pass over the groups, not over the day)."""
    grouped = ", ".join(dict.fromkeys([key, *columns]))
    return f"SELECT {grouped}, count(*) AS frequency FROM events GROUP BY {grouped}"


def _mode(key: str, column: str) -> str:
    """Per key, the most frequent non-null value of `column`; ties go to the alphabetically
    first (both engines order strings by their bytes, so by code point), never to row order."""
    return f"""
        SELECT {key}, {column} AS mode FROM (
            SELECT {key}, {column}, row_number() OVER (
                PARTITION BY {key} ORDER BY frequency DESC, {column}
            ) AS mode_rank
            FROM (
                SELECT {key}, {column}, sum(frequency) AS frequency FROM {MODE_FREQUENCIES}
                WHERE {column} IS NOT NULL GROUP BY {key}, {column}
            ) frequencies
        ) ranked
        WHERE mode_rank = 1
    """


def _per_key(key: str, counts: dict[str, str], summed: dict[str, str], distinct: str) -> str:
    """One row per key: conditional counts, how many values the sums `summed` names add (a
    mean's count), a distinct count."""
    aggregates = [
        f"count(*) FILTER (WHERE {condition}) AS {name}" for name, condition in counts.items()
    ]
    # How many values a compensated sum adds (the sums themselves: FeatureQuery.sums).
    aggregates += [
        f"count(*) FILTER (WHERE {present(value)}) AS {name}" for name, value in summed.items()
    ]
    aggregates.append(f"count(DISTINCT {distinct}) AS distinct_count")
    return f"SELECT {key}, {', '.join(aggregates)} FROM events GROUP BY {key}"


def _keyed(
    key: str,
    counts: dict[str, str],
    summed: dict[str, str],
    distinct: str,
    modes: dict[str, str],
) -> str:
    """`_per_key`'s row per key with each named mode of `modes` (name: column) joined on."""
    joins = "".join(
        f" LEFT JOIN ({_mode(key, column)}) m{n} ON m{n}.{key} = k.{key}"
        for n, column in enumerate(modes.values())
    )
    selected = ", ".join(f"m{n}.mode AS {name}" for n, name in enumerate(modes))
    return (
        f"WITH {MODE_FREQUENCIES} AS ({_mode_frequencies(key, list(modes.values()))}) "
        f"SELECT k.*, {selected} FROM ({_per_key(key, counts, summed, distinct)}) k{joins}"
    )


_USER_SUMS = {"spend": _purchase_price(), "dwell": "dwell_seconds"}


def _finish_user_features(rows: pa.Table, day: dt.date) -> pa.Table:
    impressions, clicks = _numpy(rows["impressions"]), _numpy(rows["clicks"])
    return _table(
        day,
        USER_FEATURES_SCHEMA,
        {
            "user_id": rows["user_id"],
            "impressions": impressions,
            "clicks": clicks,
            "add_to_carts": rows["add_to_carts"],
            "purchases": rows["purchases"],
            "ctr": _ratio(clicks, impressions),
            "spend": np.round(_numpy(rows["spend"]), 6),
            "mean_dwell_seconds": _mean(_numpy(rows["dwell"]), _numpy(rows["dwell_values"])),
            "distinct_items": rows["distinct_count"],
            "main_device": rows["main_device"],
            "country": rows["country"],
        },
    )


USER_FEATURES_QUERY = FeatureQuery(
    sql=_keyed(
        "user_id",
        {
            "impressions": _kind("impression"),
            "clicks": _kind("click"),
            "add_to_carts": _kind("add_to_cart"),
            "purchases": _kind("purchase"),
        },
        # The mean dwell's count (spend needs none).
        {"dwell_values": _USER_SUMS["dwell"]},
        "item_id",
        {"main_device": "device", "country": "country"},
    ),
    order_by=("user_id",),
    finish=_finish_user_features,
    sums_key="user_id",
    sums=_USER_SUMS,
)

_ITEM_SUMS = {"revenue": _purchase_price(), "price": "price"}


def _finish_item_features(rows: pa.Table, day: dt.date) -> pa.Table:
    impressions, clicks = _numpy(rows["impressions"]), _numpy(rows["clicks"])
    return _table(
        day,
        ITEM_FEATURES_SCHEMA,
        {
            "item_id": rows["item_id"],
            "item_category": rows["item_category"],
            "impressions": impressions,
            "clicks": clicks,
            "purchases": rows["purchases"],
            "ctr": _ratio(clicks, impressions),
            "revenue": np.round(_numpy(rows["revenue"]), 6),
            "mean_price": _mean(_numpy(rows["price"]), _numpy(rows["price_values"])),
            "distinct_users": rows["distinct_count"],
        },
    )


ITEM_FEATURES_QUERY = FeatureQuery(
    sql=_keyed(
        "item_id",
        {
            "impressions": _kind("impression"),
            "clicks": _kind("click"),
            "purchases": _kind("purchase"),
        },
        # The mean price's count (revenue needs none).
        {"price_values": _ITEM_SUMS["price"]},
        "user_id",
        {"item_category": "item_category"},
    ),
    order_by=("item_id",),
    finish=_finish_item_features,
    sums_key="item_id",
    sums=_ITEM_SUMS,
)


def _finish_training_examples(rows: pa.Table, day: dt.date) -> pa.Table:
    columns = {name: rows[name] for name in TRAINING_EXAMPLES_SCHEMA.names[1:]}
    return _table(day, TRAINING_EXAMPLES_SCHEMA, columns)


TRAINING_EXAMPLES_QUERY = FeatureQuery(
    sql=f"""
        WITH clicked AS (
            SELECT DISTINCT user_id, item_id FROM events WHERE {_kind("click")}
        )
        SELECT e.event_id, e.user_id, e.item_id,
            -- the UTC hour: both engines run in UTC
            CAST(hour(e.event_time) AS TINYINT) AS hour_of_day,
            e.device, e.country, e.item_category,
            -- NaN prices become null, as in every other float column.
            CASE WHEN isnan(e.price) THEN NULL ELSE e.price END AS price,
            c.user_id IS NOT NULL AS label, e.{SNAPSHOT_ROW}
        FROM events e
        LEFT JOIN clicked c ON c.user_id = e.user_id AND c.item_id = e.item_id
        WHERE e.{_kind("impression")}
    """,
    # event_id decides the order; equal ids keep the events' order.
    order_by=("event_id", SNAPSHOT_ROW),
    finish=_finish_training_examples,
)


def user_daily_features(events: Events, day: dt.date) -> pa.Table:
    """Per user and day: funnel counts, click-through rate, spend, dwell, breadth."""
    return run_on_duckdb(USER_FEATURES_QUERY, USER_FEATURES_SCHEMA, events, day)


def item_daily_features(events: Events, day: dt.date) -> pa.Table:
    """Per item and day: exposure, clicks, purchases, revenue and audience size."""
    return run_on_duckdb(ITEM_FEATURES_QUERY, ITEM_FEATURES_SCHEMA, events, day)


def training_examples(events: Events, day: dt.date) -> pa.RecordBatchReader:
    """One row per impression, labelled 1 when the user clicked that item later that day.

    Streamed: a row per impression is the day's size, so the rows go to the publisher in
    batches, in order, and are never one table in memory."""
    return run_on_duckdb(TRAINING_EXAMPLES_QUERY, TRAINING_EXAMPLES_SCHEMA, events, day)


def as_table(computed: pa.Table | pa.RecordBatchReader) -> pa.Table:
    """A feature table's rows as one table, streamed or not (tests, small days)."""
    return computed.read_all() if isinstance(computed, pa.RecordBatchReader) else computed


@dataclass(frozen=True)
class FeatureTable:
    """A daily feature table: its name, business meaning, computation, schema and key."""

    name: str
    description: str
    # The day's table, or for a table the size of the day's events its batches in order (a
    # RecordBatchReader): the publisher encodes and gates them as they come.
    compute: Callable[[Events, dt.date], pa.Table | pa.RecordBatchReader]
    schema: pa.Schema
    primary_key: tuple[str, ...]
    value_ranges: dict[str, ValueRange]
    # One line of business meaning per column (the UI's column table shows it).
    column_descriptions: dict[str, str] = field(default_factory=dict)
    # The column a model learns to predict, whose positive rate the label_rate gate watches.
    label_column: str | None = None
    # The same table as a query every engine runs (`compute` runs it on DuckDB): what the
    # scale-out engine (`assets/features/spark/`) computes. None: this process only.
    query: FeatureQuery | None = None

    def null_defaults(self) -> dict[str, float]:
        """Non-nullable columns allow no nulls; nullable ones are not limited by default."""
        return {f.name: 0.0 if not f.nullable else 1.0 for f in self.schema}


def _non_negative(*columns: str) -> dict[str, ValueRange]:
    return {column: ValueRange(minimum=0) for column in columns}


CLICK_STREAM_FEATURES = (
    FeatureTable(
        name="user_daily_features",
        column_descriptions={
            "feature_date": "UTC day the aggregates cover.",
            "user_id": "The user.",
            "impressions": "Items shown to the user that day.",
            "clicks": "Items the user clicked that day.",
            "add_to_carts": "Items the user added to the cart that day.",
            "purchases": "Items the user bought that day.",
            "ctr": "clicks / impressions of the user that day (null without impressions).",
            "spend": "Total price of the user's purchases that day.",
            "mean_dwell_seconds": "Mean seconds on an item page after a click (null: no clicks).",
            "distinct_items": "Distinct items the user saw or acted on that day.",
            "main_device": "The device family the user used most that day.",
            "country": "The user's country that day.",
        },
        description="Daily per-user engagement aggregates that personalise the CTR model.",
        compute=user_daily_features,
        query=USER_FEATURES_QUERY,
        schema=USER_FEATURES_SCHEMA,
        primary_key=("feature_date", "user_id"),
        value_ranges={
            **_non_negative("impressions", "clicks", "add_to_carts", "purchases", "spend"),
            "ctr": ValueRange(minimum=0, maximum=1),
            "mean_dwell_seconds": ValueRange(minimum=0, maximum=86_400),
        },
    ),
    FeatureTable(
        name="item_daily_features",
        column_descriptions={
            "feature_date": "UTC day the aggregates cover.",
            "item_id": "The catalogue item.",
            "item_category": "Catalogue category of the item.",
            "impressions": "Times the item was shown that day.",
            "clicks": "Clicks on the item that day.",
            "purchases": "Purchases of the item that day.",
            "ctr": "clicks / impressions of the item that day (null without impressions).",
            "revenue": "Total price of the item's purchases that day.",
            "mean_price": "Mean price the item was shown at that day.",
            "distinct_users": "Distinct users who saw or acted on the item that day.",
        },
        description="Daily per-item popularity and revenue aggregates for the CTR model.",
        compute=item_daily_features,
        query=ITEM_FEATURES_QUERY,
        schema=ITEM_FEATURES_SCHEMA,
        primary_key=("feature_date", "item_id"),
        value_ranges={
            **_non_negative("impressions", "clicks", "purchases", "revenue", "mean_price"),
            "ctr": ValueRange(minimum=0, maximum=1),
        },
    ),
    FeatureTable(
        name="training_examples",
        column_descriptions={
            "feature_date": "UTC day of the impression.",
            "event_id": "The impression's event id (one example per impression).",
            "user_id": "The user the item was shown to.",
            "item_id": "The item shown.",
            "hour_of_day": "UTC hour of the impression (0-23).",
            "device": "Device family of the impression.",
            "country": "The user's country.",
            "item_category": "Catalogue category of the item.",
            "price": "Item price when shown.",
            "label": "1 when the user clicked this item later that day, else 0.",
        },
        description="Labelled impressions (clicked or not) of one day: the CTR model's examples.",
        compute=training_examples,
        query=TRAINING_EXAMPLES_QUERY,
        schema=TRAINING_EXAMPLES_SCHEMA,
        primary_key=("event_id",),
        value_ranges={
            "label": ValueRange(minimum=0, maximum=1),
            "hour_of_day": ValueRange(minimum=0, maximum=23),
            "price": ValueRange(minimum=0),
        },
        label_column="label",
    ),
)

# The project's feature tables: point it at your own; the example's stay beside them as the
# machinery's test fixture (tests/support/example.py) until you delete them.
FEATURE_TABLES = CLICK_STREAM_FEATURES
