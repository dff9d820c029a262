"""Training examples: read parquet partitions from an ObjectStore, encode them into tensors,
and split off a held-out evaluation slice.

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

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


class InputDataError(ValueError):
    """The training input is missing, empty or does not match the expected schema."""


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
    """Row-aligned tensors: categorical indices [N, 6], numeric [N, 2], labels [N]."""

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


def read_examples(store: ObjectStore, keys: Iterable[str]) -> pa.Table:
    """Concatenate the partitions at `keys`, in sorted key order (so flag order is irrelevant)."""
    ordered = sorted(set(keys))
    if not ordered:
        raise InputDataError("No input keys given: pass at least one --input-key")
    tables = []
    for key in ordered:
        if not store.exists(key):
            raise InputDataError(
                f"Input object {store.uri(key)} does not exist; materialize that partition "
                "of training_examples first"
            )
        filesystem, path = store.arrow_location(key)
        table = pq.read_table(path, filesystem=filesystem)
        missing = [c for c in INPUT_COLUMNS if c not in table.column_names]
        if missing:
            raise InputDataError(f"{store.uri(key)} lacks columns {missing}")
        tables.append(table.select(list(INPUT_COLUMNS)))
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise InputDataError(f"Input partitions have incompatible schemas: {err}") from err
    if table.num_rows == 0:
        raise InputDataError(f"Input partitions {ordered} hold no rows")
    return table


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
    numeric = np.stack([log_price, missing.astype(np.float64)], axis=1)
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
    table = read_examples(store, keys)
    # Row order inside the window is fixed by event_id, not by how the partitions were written.
    table = table.take(pc.sort_indices(table, sort_keys=[("event_id", "ascending")]))
    held_out = eval_mask(table["event_id"], config.eval_fraction)
    encoded = encode(table, config)
    train_idx = torch.from_numpy(np.flatnonzero(~held_out))
    eval_idx = torch.from_numpy(np.flatnonzero(held_out))
    return Dataset(
        train=encoded.take(train_idx), eval=encoded.take(eval_idx), input_rows=table.num_rows
    )
