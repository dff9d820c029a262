"""Deterministic synthetic click-stream for the embedded warehouse (and tests and benchmarks).

Same seed and day -> the same rows, whatever range a day is generated in. Clicks follow a
latent user x item affinity, so a CTR model trained on the features has real signal to learn.
The population grows with the volume as real traffic's does (about 730k users and 100k items at
10M events a day, items drawn with a heavy-tailed popularity); small days, `make dev`'s among
them, keep the fixed 500 users and 200 uniformly drawn items.

It makes the example's table only (`CLICK_STREAM`), whatever the project's `SOURCE` names: a
team that declares its own source seeds its own data.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.partitions import day_bounds
from contract.source import CLICK_STREAM, SourceContract
from resources.warehouse.backends import (
    WarehouseBackend,
    create_tables,
    replace_day,
    set_watermark,
)

DEVICES = np.array(["ios", "android", "web"])
COUNTRIES = np.array(["US", "DE", "BR", "IN", "JP", "FR"])
CATEGORIES = np.array(["books", "electronics", "fashion", "home", "sports", "toys"])
_DAY_MICROS = 86_400_000_000
_HOUR_MICROS = 3_600_000_000
# Evening-heavy traffic, as in most consumer products.
_HOURLY_WEIGHT = np.array([2, 1, 1, 1, 1, 2, 3, 4, 5, 5, 5, 6, 6, 6, 5, 5, 6, 7, 8, 9, 9, 8, 6, 4])
# The smallest population, and the impressions per user and per item above it.
MIN_USERS, MIN_ITEMS = 500, 200
IMPRESSIONS_PER_USER, IMPRESSIONS_PER_ITEM = 10, 70
# Item popularity beyond the smallest catalogue: Zipf's law, the k-th most popular item drawn
# with weight 1 / k ** exponent.
POPULARITY_EXPONENT = 1.0


def population_size(impressions: int) -> tuple[int, int]:
    """Users and items for a day of this many impressions (fixed for small days)."""
    return (
        max(MIN_USERS, impressions // IMPRESSIONS_PER_USER),
        max(MIN_ITEMS, impressions // IMPRESSIONS_PER_ITEM),
    )


class _Population:
    """Users and items that stay the same across days (drawn from the seed alone)."""

    def __init__(self, seed: int, users: int, items: int):
        rng = np.random.default_rng([seed, 0])
        self.user_vectors = rng.normal(size=(users, 4))
        self.item_vectors = rng.normal(size=(items, 4))
        self.user_device = rng.integers(0, len(DEVICES), size=users)
        self.user_country = rng.integers(0, len(COUNTRIES), size=users)
        self.item_category = rng.integers(0, len(CATEGORIES), size=items)
        self.item_price = np.round(rng.lognormal(mean=3.0, sigma=0.8, size=items), 2)
        self._rng = rng
        self.items = items

    def draw_items(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Items shown: uniform in the smallest catalogue, heavy-tailed in larger ones."""
        if self.items <= MIN_ITEMS:
            return rng.integers(0, self.items, size=size)
        # Which item is how popular is part of the population, the same every day.
        by_popularity = self._rng.permutation(self.items)
        weights = 1.0 / np.arange(1, self.items + 1) ** POPULARITY_EXPONENT
        cumulative = np.cumsum(weights) / weights.sum()
        ranks = np.searchsorted(cumulative, rng.random(size), side="right")
        return by_popularity[np.minimum(ranks, self.items - 1)]


def generate_events(
    day: dt.date,
    impressions: int = 2000,
    *,
    seed: int = 7,
    users: int | None = None,
    items: int | None = None,
) -> pa.Table:
    """One day of events: impressions, and the clicks, carts and purchases they lead to.

    `users` and `items` default to `population_size(impressions)`.
    """
    if impressions < 24:
        raise ValueError("Generate at least 24 impressions a day so that every hour has data")
    default_users, default_items = population_size(impressions)
    population = _Population(seed, users or default_users, items or default_items)
    rng = np.random.default_rng([seed, day.toordinal()])

    # Every hour gets at least one impression; the rest follow the hourly traffic shape.
    hours = np.concatenate(
        [
            np.arange(24),
            rng.choice(24, size=impressions - 24, p=_HOURLY_WEIGHT / _HOURLY_WEIGHT.sum()),
        ]
    )
    offsets = hours * _HOUR_MICROS + rng.integers(0, _HOUR_MICROS, size=impressions)
    user = rng.integers(0, len(population.user_vectors), size=impressions)
    item = population.draw_items(rng, impressions)
    own_device = rng.random(impressions) < 0.8
    device = np.where(own_device, population.user_device[user], rng.integers(0, 3, impressions))

    affinity = np.einsum("ij,ij->i", population.user_vectors[user], population.item_vectors[item])
    click_probability = 1.0 / (1.0 + np.exp(-(1.2 * affinity - 2.0 + 0.3 * (device == 0))))
    clicked = rng.random(impressions) < click_probability
    carted = clicked & (rng.random(impressions) < 0.3)
    purchased = carted & (rng.random(impressions) < 0.5)

    kinds, parents = [], []
    for kind, mask in (
        ("impression", np.ones(impressions, bool)),
        ("click", clicked),
        ("add_to_cart", carted),
        ("purchase", purchased),
    ):
        index = np.flatnonzero(mask)
        parents.append(index)
        kinds.append(np.full(len(index), kind))
    parent = np.concatenate(parents)
    event_type = np.concatenate(kinds)
    # Follow-up events happen seconds to minutes after their impression, inside the same day.
    delay = np.where(
        event_type == "impression", 0, rng.integers(1_000_000, 600_000_000, len(parent))
    )
    event_offset = np.minimum(offsets[parent] + delay, _DAY_MICROS - 1)
    dwell = np.where(
        event_type == "click", np.round(rng.lognormal(2.5, 0.9, len(parent)), 3), np.nan
    )

    order = np.lexsort((np.arange(len(parent)), event_offset))
    start, _ = day_bounds(day)
    start_micros = int(start.timestamp()) * 1_000_000
    parent, event_type, event_offset, dwell = (
        parent[order],
        event_type[order],
        event_offset[order],
        dwell[order],
    )
    user_of, item_of = user[parent], item[parent]
    columns = {
        "event_id": _event_ids(day, len(parent)),
        "event_date": pa.repeat(pa.scalar(day, pa.date32()), len(parent)),
        "event_time": pa.array(start_micros + event_offset, pa.int64()).cast(
            CLICK_STREAM.schema.field("event_time").type
        ),
        "user_id": user_of.astype(np.int64),
        "item_id": item_of.astype(np.int64),
        "event_type": event_type,
        "price": population.item_price[item_of],
        "dwell_seconds": pa.array(dwell, pa.float64(), from_pandas=True),
        "device": DEVICES[device[parent]],
        "country": COUNTRIES[population.user_country[user_of]],
        "item_category": CATEGORIES[population.item_category[item_of]],
    }
    return pa.table(columns, schema=CLICK_STREAM.schema)


def _event_ids(day: dt.date, count: int) -> pa.Array:
    """`YYYYMMDD-NNNNNNN`: the day and the event's number, zero-padded to at least 7 digits."""
    numbers = pc.utf8_lpad(pa.array(np.arange(count)).cast(pa.string()), width=7, padding="0")
    return pc.binary_join_element_wise(f"{day:%Y%m%d}", numbers, "-")


class NotTheExampleSource(ValueError):
    """A warehouse declared for another source than the example's: this generator cannot fill it."""


def check_example_source(contract: SourceContract) -> None:
    """Refuse a contract other than the click stream, naming both tables and the next step."""
    if contract != CLICK_STREAM:
        raise NotTheExampleSource(
            f"the synthetic generator makes the example's {CLICK_STREAM.table!r} table only, "
            f"but this warehouse is declared for {contract.table!r}; seed your own source's "
            f"data (load {contract.table!r} and its watermark), or pass a backend built with "
            f"contract=CLICK_STREAM to seed the example."
        )


def seed_warehouse(
    backend: WarehouseBackend,
    first_day: dt.date,
    last_day: dt.date,
    *,
    impressions: int = 2000,
    seed: int = 7,
) -> int:
    """Load [first_day, last_day] (idempotently) and move the watermark to the end of last_day.

    Returns the number of event rows loaded. The backend must be declared for the example's
    click stream (`NotTheExampleSource` otherwise, before anything is written).
    """
    check_example_source(backend.contract)
    create_tables(backend)
    loaded = 0
    day = first_day
    while day <= last_day:
        events = generate_events(day, impressions, seed=seed)
        replace_day(backend, day, events)
        loaded += events.num_rows
        day += dt.timedelta(days=1)
    set_watermark(backend, day_bounds(last_day)[1])
    return loaded
