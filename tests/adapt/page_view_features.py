"""The second schema's feature logic and model-input declaration, declared only here: what a
team adapting the template writes for its own data (the page views of `page_views.py`).

Three daily tables from one day of hits: per visitor (views, scrolls, signups, load time), per
page (views, signups), and the labelled examples (one per visit: did it end in a signup). The
model factorises visitor x page, reads the referrer, browser, hour and load time of the visit,
and each visitor's and page's signups of the days before the visit's. Pure pyarrow/numpy, no
Dagster: the machinery builds the assets from `PAGE_VIEW_TABLES` and `PAGE_VIEW_INPUTS`.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.features.day_events import DayEvents
from assets.features.logic import FeatureTable
from assets.features.query import SNAPSHOT_ROW
from assets.quality.gates import ValueRange
from tests.adapt.page_views import PAGE_VIEWS
from training.model_inputs import (
    ID_HASH,
    INTEGER_RANGE,
    LOG1P,
    STRING_HASH,
    CategoricalInput,
    ExamplesTable,
    Factorized,
    HistoryTable,
    ModelInputs,
    NumericInput,
)

VIEW, SCROLL, SIGNUP = PAGE_VIEWS.kinds
_DAY = pa.field("visit_date", pa.date32(), nullable=False)

VISITOR_DAYS_SCHEMA = pa.schema(
    [
        _DAY,
        pa.field("visitor", pa.int64(), nullable=False),
        pa.field("views", pa.int64(), nullable=False),
        pa.field("scrolls", pa.int64(), nullable=False),
        pa.field("signups", pa.int64(), nullable=False),
        pa.field("mean_load_ms", pa.float64()),
    ]
)
PAGE_DAYS_SCHEMA = pa.schema(
    [
        _DAY,
        pa.field("page_id", pa.int64(), nullable=False),
        pa.field("page_path", pa.string(), nullable=False),
        pa.field("views", pa.int64(), nullable=False),
        pa.field("signups", pa.int64(), nullable=False),
    ]
)
VISIT_OUTCOMES_SCHEMA = pa.schema(
    [
        _DAY,
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("visitor", pa.int64(), nullable=False),
        pa.field("page_id", pa.int64(), nullable=False),
        pa.field("page_path", pa.string(), nullable=False),
        pa.field("referrer", pa.string()),
        pa.field("browser", pa.string()),
        pa.field("hour", pa.int8(), nullable=False),
        pa.field("load_ms", pa.float64()),
        pa.field("signed_up", pa.int8(), nullable=False),
    ]
)


def page_id(path: str) -> int:
    """A page's stable integer id (the factorised id input hashes integers)."""
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:6], "big")


def _is(hits: pa.Table, action: str) -> np.ndarray:
    return pc.fill_null(pc.equal(hits["action"], action), False).to_numpy(zero_copy_only=False)


def _page_ids(paths: pa.Array | pa.ChunkedArray | np.ndarray) -> pa.Array:
    return pa.array([page_id(p) for p in pa.array(paths).to_pylist()], pa.int64())


def _with_day(day: dt.date, schema: pa.Schema, columns: dict) -> pa.Table:
    rows = len(next(iter(columns.values())))
    arrays = {"visit_date": pa.array([day] * rows, pa.date32())}
    for name in schema.names[1:]:
        column, type_ = columns[name], schema.field(name).type
        if isinstance(column, pa.Array | pa.ChunkedArray):
            arrays[name] = column.cast(type_)
        else:
            arrays[name] = pa.array(column, type_, from_pandas=True)
    return pa.table(arrays, schema=schema)


def _hits(events: pa.Table | DayEvents) -> pa.Table:
    """The day's hits as Arrow, in the snapshot's row order (a day of page views is small)."""
    if isinstance(events, DayEvents):
        row = SNAPSHOT_ROW
        return events.arrow(f"SELECT * EXCLUDE ({row}) FROM events ORDER BY {row}")
    return events


class _Groups:
    """Rows grouped by one key column, keys ascending."""

    def __init__(self, column: pa.ChunkedArray):
        values = np.asarray(column.to_pylist(), dtype=object)
        self.keys, self._inverse = np.unique(values, return_inverse=True)

    def count(self, mask: np.ndarray) -> np.ndarray:
        return np.bincount(self._inverse, weights=mask, minlength=len(self.keys)).astype(np.int64)

    def mean(self, values: np.ndarray) -> np.ndarray:
        present = ~np.isnan(values)
        sums = np.bincount(self._inverse, np.where(present, values, 0.0), len(self.keys))
        counts = np.bincount(self._inverse, present, len(self.keys))
        return np.divide(sums, counts, out=np.full(len(self.keys), np.nan), where=counts > 0)


def visitor_days(events: pa.Table | DayEvents, day: dt.date) -> pa.Table:
    """Per visitor and day: views, scrolls, signups and the mean load time of the views."""
    hits = _hits(events)
    visitors = _Groups(hits["visitor"])
    views = _is(hits, VIEW)
    load = hits["load_ms"].to_numpy(zero_copy_only=False).astype(np.float64)
    return _with_day(
        day,
        VISITOR_DAYS_SCHEMA,
        {
            "visitor": visitors.keys,
            "views": visitors.count(views),
            "scrolls": visitors.count(_is(hits, SCROLL)),
            "signups": visitors.count(_is(hits, SIGNUP)),
            "mean_load_ms": visitors.mean(np.where(views, load, np.nan)),
        },
    )


def page_days(events: pa.Table | DayEvents, day: dt.date) -> pa.Table:
    """Per page and day: views and the signups of the visits that started there."""
    hits = _hits(events)
    pages = _Groups(hits["page_path"])
    paths = pa.array(pages.keys, pa.string())
    order = np.argsort(np.array([page_id(p) for p in paths.to_pylist()]), kind="stable")
    views, signups = pages.count(_is(hits, VIEW)), pages.count(_is(hits, SIGNUP))
    return _with_day(
        day,
        PAGE_DAYS_SCHEMA,
        {
            "page_id": _page_ids(paths.take(order)),
            "page_path": paths.take(order),
            "views": views[order],
            "signups": signups[order],
        },
    )


def visit_outcomes(events: pa.Table | DayEvents, day: dt.date) -> pa.Table:
    """One row per visit (its view), labelled 1 when the visit signed up later that day."""
    hits = _hits(events)
    views = hits.filter(_is(hits, VIEW))
    views = views.take(pc.sort_indices(views, [("session_id", "ascending")]))
    signed = set(hits.filter(_is(hits, SIGNUP))["session_id"].to_pylist())
    label = np.array([s in signed for s in views["session_id"].to_pylist()], np.int8)
    return _with_day(
        day,
        VISIT_OUTCOMES_SCHEMA,
        {
            "session_id": views["session_id"],
            "visitor": views["visitor"],
            "page_id": _page_ids(views["page_path"]),
            "page_path": views["page_path"],
            "referrer": views["referrer"],
            "browser": views["browser"],
            "hour": pc.cast(pc.hour(views[PAGE_VIEWS.time_column]), pa.int8()),
            "load_ms": views["load_ms"].to_numpy(zero_copy_only=False).astype(np.float64),
            "signed_up": label,
        },
    )


def _counts(*columns: str) -> dict[str, ValueRange]:
    return {column: ValueRange(minimum=0) for column in columns}


PAGE_VIEW_TABLES = (
    FeatureTable(
        name="visitor_days",
        description="Daily per-visitor engagement: what the signup model knows of a visitor.",
        compute=visitor_days,
        schema=VISITOR_DAYS_SCHEMA,
        primary_key=("visit_date", "visitor"),
        value_ranges={
            **_counts("views", "scrolls", "signups"),
            "mean_load_ms": ValueRange(minimum=0, maximum=60_000),
        },
        column_descriptions={
            "visit_date": "UTC day the aggregates cover.",
            "visitor": "The anonymous visitor.",
            "views": "Visits the visitor started that day.",
            "scrolls": "Visits of the visitor that scrolled that day.",
            "signups": "Visits of the visitor that signed up that day.",
            "mean_load_ms": "Mean load time of the visitor's views (null: none reported).",
        },
    ),
    FeatureTable(
        name="page_days",
        description="Daily per-page views and signups: how well a landing page converts.",
        compute=page_days,
        schema=PAGE_DAYS_SCHEMA,
        primary_key=("visit_date", "page_id"),
        value_ranges=_counts("views", "signups"),
        column_descriptions={
            "visit_date": "UTC day the aggregates cover.",
            "page_id": "The page's stable id (a hash of its path).",
            "page_path": "The page's path.",
            "views": "Visits that started on the page that day.",
            "signups": "Signups of the visits that started on the page that day.",
        },
    ),
    FeatureTable(
        name="visit_outcomes",
        description="One labelled visit per row (signed up or not): the signup model's examples.",
        compute=visit_outcomes,
        schema=VISIT_OUTCOMES_SCHEMA,
        primary_key=("session_id",),
        value_ranges={
            "hour": ValueRange(minimum=0, maximum=23),
            "load_ms": ValueRange(minimum=0, maximum=60_000),
            "signed_up": ValueRange(minimum=0, maximum=1),
        },
        column_descriptions={
            "visit_date": "UTC day of the visit.",
            "session_id": "The visit (one example per visit).",
            "visitor": "The anonymous visitor.",
            "page_id": "The landing page's stable id.",
            "page_path": "The landing page's path.",
            "referrer": "Where the visit came from.",
            "browser": "Browser family of the visit.",
            "hour": "UTC hour the visit started (0-23).",
            "load_ms": "Milliseconds the landing page took to load.",
            "signed_up": "1 when the visit signed up later that day, else 0.",
        },
        label_column="signed_up",
    ),
)

PAGE_VIEW_INPUTS = ModelInputs(
    examples=ExamplesTable(
        table="visit_outcomes", key="session_id", day_column="visit_date", label="signed_up"
    ),
    categorical=(
        CategoricalInput("visitor", ID_HASH, salt=5),
        CategoricalInput("page_id", ID_HASH, salt=6),
        CategoricalInput("referrer", STRING_HASH, buckets=8),
        CategoricalInput("browser", STRING_HASH, buckets=8),
        CategoricalInput("hour", INTEGER_RANGE, minimum=0, maximum=23),
    ),
    numeric=(NumericInput("load_ms", transform=LOG1P, missing_indicator=True),),
    factorized=Factorized(user="visitor", item="page_id"),
    history=(
        HistoryTable(
            table="visitor_days",
            example_key="visitor",
            history_key="visitor",
            day_column="visit_date",
            exposures="views",
            positives="signups",
            prefix="visitor",
        ),
        HistoryTable(
            table="page_days",
            example_key="page_id",
            history_key="page_id",
            day_column="visit_date",
            exposures="views",
            positives="signups",
            prefix="page",
        ),
    ),
    segments=("referrer",),
)
