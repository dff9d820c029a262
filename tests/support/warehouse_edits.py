"""Upstream defects made in a SQLite warehouse through its source contract, not raw SQL on
the example's column names: the same edit works for any declared table (the example's click
stream, which the seeded warehouses hold, unless told otherwise)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.compute as pc

from contract.source import CLICK_STREAM, SourceContract
from resources.warehouse.backends import SqliteBackend, normalize_events, read_day_raw, replace_day


def drop_hours_from(
    warehouse: Path, day: str, first_hour: int, contract: SourceContract = CLICK_STREAM
) -> int:
    """Delete the day's rows from `first_hour` (UTC) on, as a late load leaves it; returns the
    rows deleted."""
    backend = SqliteBackend(str(warehouse), contract)
    date = dt.date.fromisoformat(day)
    rows = normalize_events(read_day_raw(backend, date), contract)
    early = rows.filter(pc.less(pc.hour(rows.column(contract.time_column)), first_hour))
    replace_day(backend, date, early)
    return rows.num_rows - early.num_rows
