"""The event tables the feature logic's byte-identity test feeds it: clean synthetic days of
two sizes, a day with nulls in every nullable column and tied modes, and an empty day."""

import datetime as dt

import numpy as np
import pyarrow as pa

from scripts.synthetic_events import generate_events

DAY = dt.date(2026, 11, 1)


def _with_nulls(events: pa.Table, seed: int) -> pa.Table:
    """About a tenth of each nullable column set to null, at rows drawn from the seed."""
    rng = np.random.default_rng(seed)
    for name in ("price", "dwell_seconds", "device", "country", "item_category"):
        column = events[name]
        keep = pa.array(rng.random(events.num_rows) >= 0.1)
        nulled = pa.compute.if_else(keep, column, pa.scalar(None, column.type))
        events = events.set_column(events.schema.get_field_index(name), name, nulled)
    return events


def _tied_modes(events: pa.Table) -> pa.Table:
    """Every user's and item's events alternate between two values, so modes tie often."""
    flip = np.arange(events.num_rows) % 2 == 0
    for name, values in (("device", ("web", "ios")), ("item_category", ("toys", "books"))):
        column = pa.array(np.where(flip, *values))
        events = events.set_column(events.schema.get_field_index(name), name, column)
    return events


def golden_inputs() -> dict[str, pa.Table]:
    large = generate_events(DAY, impressions=5000, seed=7)
    small = generate_events(DAY - dt.timedelta(days=1), impressions=200, seed=11)
    return {
        "large": large,
        "small": small,
        "nulls": _with_nulls(generate_events(DAY, impressions=3000, seed=3), seed=5),
        "ties": _tied_modes(generate_events(DAY, impressions=1000, seed=13, users=40, items=20)),
        "empty": large.slice(0, 0),
    }
