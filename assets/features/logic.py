"""Pure feature computations: one day of events in, one feature table out (no Dagster here).

Outputs have fixed Arrow schemas and a deterministic row order, so the same events always
serialize to the same bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

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


def _frame(events: pa.Table) -> pd.DataFrame:
    frame = events.to_pandas()
    for kind in ("impression", "click", "add_to_cart", "purchase"):
        frame[f"is_{kind}"] = (frame["event_type"] == kind).astype("int64")
    return frame


def _finish(frame: pd.DataFrame, day: dt.date, schema: pa.Schema, key: str) -> pa.Table:
    frame = frame.sort_values(key, kind="stable").reset_index(drop=True)
    frame.insert(0, "feature_date", day)
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return (numerator / denominator.where(denominator > 0)).astype("float64")


def _mode(values: pd.Series) -> str | None:
    counts = values.dropna().value_counts()
    # Ties break alphabetically so the result never depends on row order.
    return None if counts.empty else min(counts[counts == counts.max()].index)


def user_daily_features(events: pa.Table, day: dt.date) -> pa.Table:
    """Per user and day: funnel counts, click-through rate, spend, dwell, breadth."""
    frame = _frame(events)
    frame["purchase_value"] = frame["price"].where(frame["is_purchase"] == 1, 0.0)
    grouped = frame.groupby("user_id", sort=True)
    features = grouped.agg(
        impressions=("is_impression", "sum"),
        clicks=("is_click", "sum"),
        add_to_carts=("is_add_to_cart", "sum"),
        purchases=("is_purchase", "sum"),
        spend=("purchase_value", "sum"),
        mean_dwell_seconds=("dwell_seconds", "mean"),
        distinct_items=("item_id", "nunique"),
        main_device=("device", _mode),
        country=("country", _mode),
    ).reset_index()
    features["ctr"] = _ratio(features["clicks"], features["impressions"])
    features["spend"] = features["spend"].round(6)
    return _finish(features, day, USER_FEATURES_SCHEMA, "user_id")


def item_daily_features(events: pa.Table, day: dt.date) -> pa.Table:
    """Per item and day: exposure, clicks, purchases, revenue and audience size."""
    frame = _frame(events)
    frame["purchase_value"] = frame["price"].where(frame["is_purchase"] == 1, 0.0)
    features = (
        frame.groupby("item_id", sort=True)
        .agg(
            item_category=("item_category", _mode),
            impressions=("is_impression", "sum"),
            clicks=("is_click", "sum"),
            purchases=("is_purchase", "sum"),
            revenue=("purchase_value", "sum"),
            mean_price=("price", "mean"),
            distinct_users=("user_id", "nunique"),
        )
        .reset_index()
    )
    features["ctr"] = _ratio(features["clicks"], features["impressions"])
    features["revenue"] = features["revenue"].round(6)
    return _finish(features, day, ITEM_FEATURES_SCHEMA, "item_id")


def training_examples(events: pa.Table, day: dt.date) -> pa.Table:
    """One row per impression, labelled 1 when the user clicked that item later that day."""
    frame = _frame(events)
    impressions = frame[frame["is_impression"] == 1]
    clicked_pairs = frame.loc[frame["is_click"] == 1, ["user_id", "item_id"]].drop_duplicates()
    clicked_pairs["label"] = 1
    examples = impressions.merge(clicked_pairs, on=["user_id", "item_id"], how="left")
    examples["label"] = examples["label"].fillna(0).astype("int8")
    examples["hour_of_day"] = examples["event_time"].dt.hour.astype("int8")
    return _finish(examples, day, TRAINING_EXAMPLES_SCHEMA, "event_id")


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
