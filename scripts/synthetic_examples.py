"""The example's trainer inputs at volume, written straight from a latent-affinity population
(the benchmarks' shortcut past the feature pipeline): a day of training_examples rows and the
user/item daily history the model reads, vectorized, with users and items growing with the
volume (one user per 10 impressions, one item per 100, both heavy-tailed). Example data, like
`scripts/synthetic_events.py`: a team with other data writes its own."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.features.logic import TRAINING_EXAMPLES_SCHEMA
from scripts.synthetic_events import _HOURLY_WEIGHT, CATEGORIES, COUNTRIES, DEVICES


def _strings(indices: np.ndarray, values: np.ndarray) -> pa.Array:
    dictionary = pa.DictionaryArray.from_arrays(indices.astype(np.int32), pa.array(values))
    return dictionary.cast(pa.string())


class Population:
    """Users and items fixed across the window; heavy-tailed activity and popularity."""

    def __init__(self, impressions: int, seed: int = 7):
        self.users = max(100, impressions // 10)
        self.items = max(20, impressions // 100)
        rng = np.random.default_rng([seed, 0])
        self.user_vectors = rng.normal(size=(self.users, 4))
        self.item_vectors = rng.normal(size=(self.items, 4))
        self.user_device = rng.integers(0, len(DEVICES), self.users)
        self.user_country = rng.integers(0, len(COUNTRIES), self.users)
        self.item_category = rng.integers(0, len(CATEGORIES), self.items)
        price = np.round(rng.lognormal(3.0, 0.8, self.items), 2)
        self.item_price = np.where(rng.random(self.items) < 0.02, np.nan, price)


def examples_table(population: Population, day: dt.date, impressions: int, seed: int = 7):
    """One day of training_examples rows, sorted by event_id as the pipeline writes them."""
    rng = np.random.default_rng([seed, day.toordinal()])
    # Powers of a uniform draw: a few users and items take most of the traffic.
    user = (population.users * rng.random(impressions) ** 2).astype(np.int64)
    item = (population.items * rng.random(impressions) ** 3).astype(np.int64)
    hour = rng.choice(24, size=impressions, p=_HOURLY_WEIGHT / _HOURLY_WEIGHT.sum())
    own_device = rng.random(impressions) < 0.8
    device = np.where(own_device, population.user_device[user], rng.integers(0, 3, impressions))
    affinity = np.einsum("ij,ij->i", population.user_vectors[user], population.item_vectors[item])
    probability = 1.0 / (1.0 + np.exp(-(1.2 * affinity - 2.0 + 0.3 * (device == 0))))
    label = (rng.random(impressions) < probability).astype(np.int8)
    serial = pc.utf8_lpad(pc.cast(pa.array(np.arange(impressions)), pa.string()), 7, "0")
    event_id = pc.binary_join_element_wise(f"{day:%Y%m%d}-", serial, "")
    columns = {
        "feature_date": pa.array(np.full(impressions, (day - dt.date(1970, 1, 1)).days, np.int32)),
        "event_id": event_id,
        "user_id": pa.array(user),
        "item_id": pa.array(item),
        "hour_of_day": pa.array(hour.astype(np.int8)),
        "device": _strings(device, DEVICES),
        "country": _strings(population.user_country[user], COUNTRIES),
        "item_category": _strings(population.item_category[item], CATEGORIES),
        "price": pa.array(population.item_price[item], pa.float64(), from_pandas=True),
        "label": pa.array(label),
    }
    arrays = [columns[f.name].cast(f.type) for f in TRAINING_EXAMPLES_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=TRAINING_EXAMPLES_SCHEMA)


def history_table(examples: pa.Table, id_column: str, day: dt.date) -> pa.Table:
    """The daily feature columns the trainer reads: impressions and clicks per id that day."""
    ids = examples[id_column].to_numpy()
    label = examples["label"].to_numpy().astype(np.int64)
    shown = np.bincount(ids)
    clicks = np.bincount(ids, weights=label).astype(np.int64)
    present = np.flatnonzero(shown)
    return pa.table(
        {
            "feature_date": pa.array([day] * len(present), pa.date32()),
            id_column: pa.array(present.astype(np.int64)),
            "impressions": pa.array(shown[present].astype(np.int64)),
            "clicks": pa.array(clicks[present]),
        }
    )


def day_tables(
    population: Population, day: dt.date, impressions: int, with_history: bool
) -> dict[str, pa.Table]:
    """One day's trainer inputs by asset: the examples and, for a day before the trained one,
    the user and item history."""
    examples = examples_table(population, day, impressions)
    tables = {"training_examples": examples}
    if with_history:
        tables["user_daily_features"] = history_table(examples, "user_id", day)
        tables["item_daily_features"] = history_table(examples, "item_id", day)
    return tables
