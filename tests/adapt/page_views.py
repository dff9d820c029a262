"""A second upstream table, declared only here: a marketing site's page views.

Unlike the example it has another table and key (a composite one), a timestamp and no date
column (a day is the half-open range on `viewed_at`), other event kinds and another label
(signups over views), other watched columns and its own watermarks table. The tests under
`tests/adapt/` run the machinery on it to show that nothing there is fitted to the example.

Same seed and day -> the same rows.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from contract.source import DaySelection, LabelDefinition, SourceColumn, SourceContract
from resources.warehouse.backends import (
    WarehouseBackend,
    create_tables,
    day_range,
    replace_day,
    set_watermark,
)

PAGE_VIEWS = SourceContract(
    table="page_views",
    columns=(
        SourceColumn("session_id", pa.string(), False, "The visit the hit belongs to."),
        SourceColumn("hit_number", pa.int64(), False, "Order of the hit within its visit.", 0),
        SourceColumn("viewed_at", pa.timestamp("us", tz="UTC"), False, "When the hit happened."),
        SourceColumn("visitor", pa.int64(), False, "Anonymous visitor id.", minimum=0),
        SourceColumn("page_path", pa.string(), False, "The page the hit was on."),
        SourceColumn(
            "action",
            pa.string(),
            False,
            "view, scroll or signup.",
            allowed=("view", "scroll", "signup"),
        ),
        SourceColumn(
            "load_ms",
            pa.float64(),
            True,
            "Milliseconds the page took to load.",
            max_null_fraction=0.03,
            minimum=0,
            maximum=60_000,
        ),
        SourceColumn(
            "referrer",
            pa.string(),
            True,
            "Where the visit came from.",
            max_null_fraction=0.08,
        ),
        SourceColumn(
            "browser", pa.string(), True, "Browser family of the visit.", max_null_fraction=0.05
        ),
    ),
    time_column="viewed_at",
    day=DaySelection(),
    key=("session_id", "hit_number"),
    content_key=("visitor", "page_path", "action", "viewed_at"),
    kind_column="action",
    kinds=("view", "scroll", "signup"),
    label=LabelDefinition(exposure_kind="view", positive_kind="signup"),
    watched_categorical=("referrer", "browser"),
    watched_numeric=("load_ms",),
    watermarks_table="page_view_watermarks",
    description="The day's page views of the marketing site",
)

PAGES = np.array(["/", "/pricing", "/docs", "/blog", "/about", "/signup"])
_PAGE_WEIGHT = np.array([0.3, 0.15, 0.2, 0.2, 0.05, 0.1])
REFERRERS = np.array(["search", "social", "direct", "email"])
_REFERRER_WEIGHT = np.array([0.45, 0.25, 0.2, 0.1])
BROWSERS = np.array(["chrome", "safari", "firefox", "edge"])
_BROWSER_WEIGHT = np.array([0.6, 0.25, 0.1, 0.05])
# Office hours: the site is read at work.
_HOURLY = np.array([1, 1, 1, 1, 1, 2, 3, 5, 8, 9, 9, 8, 7, 8, 9, 9, 8, 6, 4, 3, 2, 2, 1, 1])
_HOUR_MICROS = 3_600_000_000


def generate_page_views(day: dt.date, visits: int = 800, *, seed: int = 3) -> pa.Table:
    """One day of hits: a view per visit, then a scroll (40 %) and a signup (about 8 %, more
    from email, on the pricing and signup pages and for every third visitor) after it.

    Every hour holds at least 12 visits, and every hit lies inside the day."""
    rng = np.random.default_rng([seed, day.toordinal()])
    count = int(visits * rng.uniform(0.95, 1.05))
    hours = np.concatenate(
        [np.repeat(np.arange(24), 12), rng.choice(24, count - 288, p=_HOURLY / _HOURLY.sum())]
    )
    offsets = hours * _HOUR_MICROS + rng.integers(0, _HOUR_MICROS - 120_000_000, count)
    visitor = rng.integers(0, 400, count)
    page = rng.choice(len(PAGES), count, p=_PAGE_WEIGHT)
    referrer = np.where(
        rng.random(count) < 0.03, None, REFERRERS[rng.choice(4, count, p=_REFERRER_WEIGHT)]
    )
    browser = BROWSERS[rng.choice(4, count, p=_BROWSER_WEIGHT)]
    load = np.round(rng.lognormal(np.log(350.0), 0.5, count), 1)
    scrolled = rng.random(count) < 0.4
    # Signups a model can learn (the loop test promotes one): email visits and the pricing and
    # signup pages convert more, and so does every third visitor.
    signup_rate = (
        0.02
        + 0.14 * (referrer == "email")
        + 0.08 * np.isin(page, (1, 5))
        + 0.05 * (visitor % 3 == 0)
    )
    signed_up = rng.random(count) < signup_rate

    hits = [np.arange(count)]
    numbers, actions = [np.zeros(count, np.int64)], [np.full(count, "view", object)]
    delays = [np.zeros(count, np.int64)]
    for number, (action, mask) in enumerate((("scroll", scrolled), ("signup", signed_up)), 1):
        chosen = np.flatnonzero(mask)
        hits.append(chosen)
        numbers.append(np.full(len(chosen), number, np.int64))
        actions.append(np.full(len(chosen), action, object))
        delays.append(rng.integers(1_000_000, 60_000_000, len(chosen)))
    visit = np.concatenate(hits)
    # Each hit reports its page's load time; the browser drops about 1 % of them.
    hit_load = np.where(rng.random(len(visit)) < 0.01, np.nan, load[visit])
    start = int(day_range(day)[0].timestamp()) * 1_000_000
    columns = {
        "session_id": [f"s-{day:%Y%m%d}-{i:05d}" for i in visit],
        "hit_number": np.concatenate(numbers),
        "viewed_at": pa.array(start + offsets[visit] + np.concatenate(delays), pa.int64()).cast(
            PAGE_VIEWS.column("viewed_at").type
        ),
        "visitor": visitor[visit].astype(np.int64),
        "page_path": PAGES[page[visit]],
        "action": np.concatenate(actions).astype(str),
        "load_ms": pa.array(hit_load, pa.float64(), from_pandas=True),
        "referrer": referrer[visit],
        "browser": browser[visit],
    }
    return pa.table(columns, schema=PAGE_VIEWS.schema)


def seed_page_views(
    backend: WarehouseBackend, first_day: dt.date, last_day: dt.date, visits: int = 800
) -> None:
    """Load [first_day, last_day] (idempotently) and move the watermark to last_day's end."""
    create_tables(backend)
    day = first_day
    while day <= last_day:
        replace_day(backend, day, generate_page_views(day, visits))
        day += dt.timedelta(days=1)
    set_watermark(backend, day_range(last_day)[1])
