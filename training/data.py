"""Training examples: read parquet partitions from an ObjectStore, join each example's user
and item history from the daily feature tables (only days before the example's own day),
encode them into tensors, and split off a held-out evaluation slice.

Everything here is a pure function of the input bytes and the config: no global RNG, no
Python `hash()` (salted per process), no dependence on the order the keys were passed in.
That is what lets a resumed run (or another rank) rebuild exactly the same tensors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from resources.storage.object_store import ObjectStore
from training.config import TrainConfig

# Columns the trainer reads from TRAINING_EXAMPLES_SCHEMA (assets/features/logic.py).
INPUT_COLUMNS = (
    "feature_date",
    "event_id",
    "user_id",
    "item_id",
    "hour_of_day",
    "device",
    "country",
    "item_category",
    "price",
    "label",
)
# Order of the categorical index columns; the model builds one embedding per entry.
CATEGORICAL_FEATURES = ("user_id", "item_id", "device", "country", "item_category", "hour_of_day")
# Low-cardinality strings get small hash spaces; bucket 0 is reserved for null.
STRING_BUCKETS = {"device": 16, "country": 64, "item_category": 64}
HOURS = 24
# log1p(price) and a missing-price indicator.
NUMERIC_FEATURES = ("log1p_price", "price_missing")
# With `history_features`: the user's and the item's history before the example's day, from
# user_daily_features / item_daily_features (USER_FEATURES_SCHEMA / ITEM_FEATURES_SCHEMA).
HISTORY_FEATURES = (
    "user_log_impressions",
    "user_ctr_logit",
    "user_no_history",
    "item_log_impressions",
    "item_ctr_logit",
    "item_no_history",
)
# The columns each daily feature table must hold, by the id it is keyed on.
HISTORY_TABLES = {"user_id": "user_daily_features", "item_id": "item_daily_features"}
HISTORY_COLUMNS = ("feature_date", "impressions", "clicks")
# Beta(1, 5) prior on a history's click rate (mean 1/6, about the data's CTR): a user seen
# twice without a click is not a zero-CTR user.
PRIOR_CLICKS, PRIOR_IMPRESSIONS = 1.0, 6.0

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


class InputDataError(ValueError):
    """The training input is missing, empty or does not match the expected schema."""


def numeric_features(config: TrainConfig) -> tuple[str, ...]:
    """Names of the numeric input columns, in order (the model's numeric width)."""
    return NUMERIC_FEATURES + (HISTORY_FEATURES if config.history_features else ())


def categorical_cardinalities(config: TrainConfig) -> tuple[int, ...]:
    """Embedding table sizes, in CATEGORICAL_FEATURES order."""
    sizes = {
        "user_id": config.user_buckets,
        "item_id": config.item_buckets,
        "hour_of_day": HOURS,
        **STRING_BUCKETS,
    }
    return tuple(sizes[name] for name in CATEGORICAL_FEATURES)


@dataclass(frozen=True)
class EncodedExamples:
    """Row-aligned tensors: categorical indices [N, 6], numeric [N, len(numeric_features)],
    labels [N]."""

    categorical: torch.Tensor
    numeric: torch.Tensor
    label: torch.Tensor

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def take(self, indices: torch.Tensor) -> EncodedExamples:
        return EncodedExamples(
            self.categorical[indices], self.numeric[indices], self.label[indices]
        )

    def to(self, device: torch.device | str) -> EncodedExamples:
        return EncodedExamples(
            self.categorical.to(device), self.numeric.to(device), self.label.to(device)
        )


@dataclass(frozen=True)
class Dataset:
    train: EncodedExamples
    eval: EncodedExamples
    input_rows: int


@dataclass(frozen=True)
class Inputs:
    """The input partitions, by kind: the examples, and the user/item daily features (None
    when no partition of that table was given)."""

    examples: pa.Table
    user_features: pa.Table | None
    item_features: pa.Table | None


def _kind(table: pa.Table) -> str | None:
    """Which table a partition is, from its columns (keys may be versioned or renamed)."""
    return partition_kind(table.column_names)


def partition_kind(column_names: Iterable[str]) -> str | None:
    """Which table a partition with these columns is (a parquet footer's schema suffices)."""
    names = set(column_names)
    if "label" in names or {"user_id", "item_id"} <= names:
        return "training_examples"
    for id_column, asset in HISTORY_TABLES.items():
        if id_column in names:
            return asset
    return None


def read_inputs(store: ObjectStore, keys: Iterable[str]) -> Inputs:
    """Read the partitions at `keys` (sorted, so flag order is irrelevant) and concatenate them
    by kind: training_examples, user_daily_features, item_daily_features."""
    ordered = sorted(set(keys))
    if not ordered:
        raise InputDataError("No input keys given: pass at least one --input-key")
    parts: dict[str, list[pa.Table]] = {}
    for key in ordered:
        if not store.exists(key):
            raise InputDataError(
                f"Input object {store.uri(key)} does not exist; materialize that partition "
                "of its asset (training_examples or a daily feature table) first"
            )
        filesystem, path = store.arrow_location(key)
        table = pq.read_table(path, filesystem=filesystem)
        kind = _kind(table)
        if kind is None:
            raise InputDataError(
                f"{store.uri(key)} is neither training_examples nor user/item daily features "
                f"(columns {table.column_names})"
            )
        if kind == "training_examples":
            columns = INPUT_COLUMNS
        else:
            id_column = next(c for c, a in HISTORY_TABLES.items() if a == kind)
            columns = (id_column, *HISTORY_COLUMNS)
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise InputDataError(f"{store.uri(key)} lacks columns {missing}")
        parts.setdefault(kind, []).append(table.select(list(columns)))
    if "training_examples" not in parts:
        raise InputDataError(f"Input partitions {ordered} hold no training_examples partition")
    tables = {}
    for kind, kind_tables in parts.items():
        try:
            tables[kind] = pa.concat_tables(kind_tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise InputDataError(f"{kind} partitions have incompatible schemas: {err}") from err
    if tables["training_examples"].num_rows == 0:
        raise InputDataError(f"Input partitions {ordered} hold no rows")
    return Inputs(
        tables["training_examples"],
        tables.get("user_daily_features"),
        tables.get("item_daily_features"),
    )


def read_examples(store: ObjectStore, keys: Iterable[str]) -> pa.Table:
    """The training_examples rows among the partitions at `keys`."""
    return read_inputs(store, keys).examples


def _days(column: pa.ChunkedArray) -> np.ndarray:
    """date32 values as integer days since the epoch."""
    return column.cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)


def _history_sums(
    example_days: np.ndarray, example_ids: np.ndarray, features: pa.Table | None, id_column: str
) -> tuple[np.ndarray, np.ndarray]:
    """Impressions and clicks of each example's user (or item) summed over the feature rows
    of days strictly before the example's own day: nothing from that day or later is read."""
    impressions = np.zeros(len(example_ids), dtype=np.float64)
    clicks = np.zeros(len(example_ids), dtype=np.float64)
    if features is None or features.num_rows == 0:
        return impressions, clicks
    feature_days = _days(features["feature_date"])
    ids = features[id_column].to_numpy(zero_copy_only=False).astype(np.int64)
    shown = features["impressions"].to_numpy(zero_copy_only=False).astype(np.float64)
    clicked = features["clicks"].to_numpy(zero_copy_only=False).astype(np.float64)
    for day in np.unique(example_days):
        past = feature_days < day
        if not past.any():
            continue
        known, inverse = np.unique(ids[past], return_inverse=True)
        shown_sum = np.bincount(inverse, weights=shown[past], minlength=len(known))
        clicked_sum = np.bincount(inverse, weights=clicked[past], minlength=len(known))
        rows = np.flatnonzero(example_days == day)
        position = np.searchsorted(known, example_ids[rows]).clip(max=len(known) - 1)
        found = known[position] == example_ids[rows]
        impressions[rows[found]] = shown_sum[position[found]]
        clicks[rows[found]] = clicked_sum[position[found]]
    return impressions, clicks


def attach_history(
    examples: pa.Table, user_features: pa.Table | None, item_features: pa.Table | None
) -> pa.Table:
    """The examples with HISTORY_FEATURES appended: for each row, its user's and its item's
    impressions and smoothed click rate over the feature days before the row's own day (the
    point-in-time join: a day's aggregates include clicks made after its impressions, so they
    may only describe later days). No history: zero impressions, the prior's rate, flag 1."""
    days = _days(examples["feature_date"])
    columns = {}
    for prefix, id_column, features in (
        ("user", "user_id", user_features),
        ("item", "item_id", item_features),
    ):
        ids = examples[id_column].to_numpy(zero_copy_only=False).astype(np.int64)
        shown, clicked = _history_sums(days, ids, features, id_column)
        rate = (np.minimum(clicked, shown) + PRIOR_CLICKS) / (shown + PRIOR_IMPRESSIONS)
        columns[f"{prefix}_log_impressions"] = np.log1p(shown)
        columns[f"{prefix}_ctr_logit"] = np.log(rate) - np.log1p(-rate)
        columns[f"{prefix}_no_history"] = (shown == 0).astype(np.float64)
    for name in HISTORY_FEATURES:
        examples = examples.append_column(name, pa.array(columns[name], pa.float64()))
    return examples


def _mix64(values: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 finaliser: a fixed, well-spread integer hash (uint64 arithmetic wraps)."""
    x = values.astype(np.uint64) ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
    return x ^ (x >> np.uint64(31))


def _string_hash(value: str, salt: str) -> int:
    digest = hashlib.blake2b(value.encode(), digest_size=8, person=salt.encode()[:16])
    return int.from_bytes(digest.digest(), "little")


def _hash_ids(column: pa.ChunkedArray, buckets: int, salt: int) -> np.ndarray:
    ids = column.to_numpy(zero_copy_only=False).astype(np.int64)
    return (_mix64(ids.view(np.uint64), salt) % np.uint64(buckets)).astype(np.int64)


def _hash_strings(column: pa.ChunkedArray, buckets: int, salt: str) -> np.ndarray:
    # Hash each distinct value once; there are only a handful per column.
    encoded = column.combine_chunks().dictionary_encode()
    dictionary = encoded.dictionary.to_pylist()
    table = np.array(
        [1 + _string_hash(v, salt) % (buckets - 1) for v in dictionary] or [0], dtype=np.int64
    )
    indices = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    out = table[indices] if dictionary else np.zeros(len(indices), dtype=np.int64)
    nulls = encoded.indices.is_null().to_numpy(zero_copy_only=False)
    out[nulls] = 0
    return out


def encode(table: pa.Table, config: TrainConfig) -> EncodedExamples:
    """Arrow rows to tensors; the same rows always give the same tensors."""
    hours = table["hour_of_day"].to_numpy(zero_copy_only=False).astype(np.int64)
    if len(hours) and (hours.min() < 0 or hours.max() >= HOURS):
        raise InputDataError(f"hour_of_day outside [0, {HOURS}): {hours.min()}..{hours.max()}")
    columns = {
        "user_id": _hash_ids(table["user_id"], config.user_buckets, salt=1),
        "item_id": _hash_ids(table["item_id"], config.item_buckets, salt=2),
        "hour_of_day": hours,
        **{
            name: _hash_strings(table[name], buckets, salt=name)
            for name, buckets in STRING_BUCKETS.items()
        },
    }
    categorical = np.stack([columns[name] for name in CATEGORICAL_FEATURES], axis=1)
    price = table["price"].to_numpy(zero_copy_only=False).astype(np.float64)
    missing = np.isnan(price)
    log_price = np.log1p(np.clip(np.where(missing, 0.0, price), 0.0, None))
    numeric_columns = [log_price, missing.astype(np.float64)]
    if config.history_features:
        absent = [c for c in HISTORY_FEATURES if c not in table.column_names]
        if absent:
            raise InputDataError(
                f"history_features is on but the examples lack {absent}: join the user/item "
                "daily features first (attach_history)"
            )
        numeric_columns += [
            table[name].to_numpy(zero_copy_only=False).astype(np.float64)
            for name in HISTORY_FEATURES
        ]
    numeric = np.stack(numeric_columns, axis=1)
    labels = table["label"].to_numpy(zero_copy_only=False).astype(np.float32)
    return EncodedExamples(
        categorical=torch.from_numpy(np.ascontiguousarray(categorical)),
        numeric=torch.from_numpy(numeric.astype(np.float32)),
        label=torch.from_numpy(labels),
    )


def eval_mask(event_ids: Sequence[str] | pa.ChunkedArray, fraction: float) -> np.ndarray:
    """True for held-out rows. Hashing the event id (not a random draw) keeps each event on the
    same side of the split whatever window, seed or rank reads it, so eval never leaks into
    training when the window slides."""
    values = event_ids.to_pylist() if isinstance(event_ids, pa.ChunkedArray) else event_ids
    threshold = int(fraction * 2**64)
    return np.fromiter(
        (_string_hash(v, "eval-split") < threshold for v in values), dtype=bool, count=len(values)
    )


def load_dataset(store: ObjectStore, keys: Iterable[str], config: TrainConfig) -> Dataset:
    inputs = read_inputs(store, keys)
    table = inputs.examples
    # Row order inside the window is fixed by event_id, not by how the partitions were written.
    table = table.take(pc.sort_indices(table, sort_keys=[("event_id", "ascending")]))
    if config.history_features:
        absent = [
            asset
            for asset, features in (
                ("user_daily_features", inputs.user_features),
                ("item_daily_features", inputs.item_features),
            )
            if features is None
        ]
        if absent:
            raise InputDataError(
                f"history_features is on but no partition of {absent} is among the input keys: "
                "pass the feature partitions of the window's days before the trained day, or "
                "set history_features false"
            )
        table = attach_history(table, inputs.user_features, inputs.item_features)
    held_out = eval_mask(table["event_id"], config.eval_fraction)
    encoded = encode(table, config)
    train_idx = torch.from_numpy(np.flatnonzero(~held_out))
    eval_idx = torch.from_numpy(np.flatnonzero(held_out))
    return Dataset(
        train=encoded.take(train_idx), eval=encoded.take(eval_idx), input_rows=table.num_rows
    )
