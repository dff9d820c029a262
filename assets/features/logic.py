"""Pure feature computations: one day of events in, one feature table out (no Dagster here).

Outputs have fixed Arrow schemas and a deterministic row order, so the same events always
serialize to the same bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.features.grouped import Groups
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


def _is(events: pa.Table, kind: str) -> np.ndarray:
    """Which rows are events of this kind (a null type is none)."""
    return pc.fill_null(pc.equal(events["event_type"], kind), False).to_numpy(zero_copy_only=False)


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    """A float column as numpy, nulls as NaN (what the aggregations skip)."""
    return column.to_numpy(zero_copy_only=False).astype(np.float64)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator; NaN (null in the table) where the denominator is 0."""
    out = np.full(len(numerator), np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def _table(
    day: dt.date, schema: pa.Schema, columns: dict[str, np.ndarray | pa.Array | pa.ChunkedArray]
) -> pa.Table:
    """The feature table in schema order, NaN stored as null, one row per key already sorted."""
    rows = len(next(iter(columns.values())))
    arrays = {"feature_date": pa.array([day] * rows, pa.date32())}
    for name in schema.names[1:]:
        column, type_ = columns[name], schema.field(name).type
        if isinstance(column, pa.Array | pa.ChunkedArray):
            arrays[name] = column.cast(type_)
        else:
            arrays[name] = pa.array(column, type_, from_pandas=True)
    return pa.table(arrays, schema=schema)


def user_daily_features(events: pa.Table, day: dt.date) -> pa.Table:
    """Per user and day: funnel counts, click-through rate, spend, dwell, breadth."""
    users = Groups.of(events["user_id"])
    impressions, clicks = users.count(_is(events, "impression")), users.count(_is(events, "click"))
    purchased = _is(events, "purchase")
    spend, _ = users.compensated_sum(np.where(purchased, _floats(events["price"]), 0.0))
    return _table(
        day,
        USER_FEATURES_SCHEMA,
        {
            "user_id": users.keys,
            "impressions": impressions,
            "clicks": clicks,
            "add_to_carts": users.count(_is(events, "add_to_cart")),
            "purchases": users.count(purchased),
            "ctr": _ratio(clicks, impressions),
            "spend": np.round(spend, 6),
            "mean_dwell_seconds": users.mean(_floats(events["dwell_seconds"])),
            "distinct_items": users.distinct(events["item_id"]),
            "main_device": users.mode(events["device"]),
            "country": users.mode(events["country"]),
        },
    )


def item_daily_features(events: pa.Table, day: dt.date) -> pa.Table:
    """Per item and day: exposure, clicks, purchases, revenue and audience size."""
    items = Groups.of(events["item_id"])
    impressions, clicks = items.count(_is(events, "impression")), items.count(_is(events, "click"))
    purchased = _is(events, "purchase")
    price = _floats(events["price"])
    revenue, _ = items.compensated_sum(np.where(purchased, price, 0.0))
    return _table(
        day,
        ITEM_FEATURES_SCHEMA,
        {
            "item_id": items.keys,
            "item_category": items.mode(events["item_category"]),
            "impressions": impressions,
            "clicks": clicks,
            "purchases": items.count(purchased),
            "ctr": _ratio(clicks, impressions),
            "revenue": np.round(revenue, 6),
            "mean_price": items.mean(price),
            "distinct_users": items.distinct(events["user_id"]),
        },
    )


def training_examples(events: pa.Table, day: dt.date) -> pa.Table:
    """One row per impression, labelled 1 when the user clicked that item later that day."""
    pair = ["user_id", "item_id"]
    impressions = events.filter(_is(events, "impression"))
    impressions = impressions.append_column("row", pa.array(np.arange(impressions.num_rows)))
    clicks = events.filter(_is(events, "click")).select(pair)
    clicked = clicks.group_by(pair, use_threads=False).aggregate([])
    clicked = clicked.append_column("clicked", pa.array(np.ones(clicked.num_rows, np.int8)))
    examples = impressions.join(clicked, keys=pair, join_type="left outer", use_threads=False)
    # Joins do not keep row order: event_id decides it, and equal ids keep the events' order.
    examples = examples.take(
        pc.sort_indices(examples, [("event_id", "ascending"), ("row", "ascending")])
    )
    passed_through = ("event_id", "user_id", "item_id", "device", "country", "item_category")
    return _table(
        day,
        TRAINING_EXAMPLES_SCHEMA,
        {
            **{name: examples[name] for name in passed_through},
            "hour_of_day": pc.cast(pc.hour(examples["event_time"]), pa.int8()),
            # NaN prices become null, as in every other float column.
            "price": _floats(examples["price"]),
            "label": pc.fill_null(examples["clicked"], 0),
        },
    )


@dataclass(frozen=True)
class FeatureTable:
    """A daily feature table: its name, business meaning, computation, schema and key."""

    name: str
    description: str
    compute: Callable[[pa.Table, dt.date], pa.Table]
    schema: pa.Schema
    primary_key: tuple[str, ...]
    value_ranges: dict[str, ValueRange]
    # One line of business meaning per column (the UI's column table shows it).
    column_descriptions: dict[str, str] = field(default_factory=dict)
    # The column a model learns to predict, whose positive rate the label_rate gate watches.
    label_column: str | None = None

    def null_defaults(self) -> dict[str, float]:
        """Non-nullable columns allow no nulls; nullable ones are not limited by default."""
        return {f.name: 0.0 if not f.nullable else 1.0 for f in self.schema}


def _non_negative(*columns: str) -> dict[str, ValueRange]:
    return {column: ValueRange(minimum=0) for column in columns}


FEATURE_TABLES = (
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
