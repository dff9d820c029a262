"""Training examples: read the declared tables' parquet partitions from an ObjectStore, join
each example's history from the declared history tables (only days before the example's own
day), encode them into tensors as the declaration says, and split off a held-out slice.

Which table a partition is comes from the caller ({object key: table}, from the
training_dataset manifest), never from its columns; which columns are read, joined and encoded
comes from the model-input declaration (training/model_inputs.py) in the config.

Everything here is a pure function of the input bytes and the config: no global RNG, no
Python `hash()` (salted per process), no dependence on the order the keys were passed in.
That is what lets a resumed run (or another rank) rebuild exactly the same tensors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from resources.storage.object_store import ObjectStore
from training.config import ConfigError, TrainConfig
from training.model_inputs import (
    FACTOR_BUCKET_FIELDS,
    ID_HASH,
    INTEGER_RANGE,
    LOG1P,
    HistoryTable,
    ModelInputs,
)

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


class InputDataError(ValueError):
    """The training input is missing, empty or does not match the expected schema."""


def declaration(config: TrainConfig) -> ModelInputs:
    """The config's model-input declaration; a config without one cannot read data."""
    if config.model_inputs is None:
        raise ConfigError(
            "TrainConfig.model_inputs is not set: pass the model-input declaration (the "
            "training_dataset manifest's model_input_declaration) in the config"
        )
    return config.model_inputs


def numeric_features(config: TrainConfig) -> tuple[str, ...]:
    """Names of the numeric input columns, in order (the model's numeric width)."""
    return declaration(config).numeric_features(config.history_features)


def categorical_cardinalities(config: TrainConfig) -> tuple[int, ...]:
    """Embedding table sizes, in the declaration's categorical order."""
    inputs = declaration(config)
    factor_buckets = {
        getattr(inputs.factorized, side): getattr(config, field)
        for side, field in FACTOR_BUCKET_FIELDS.items()
    }
    sizes = []
    for c in inputs.categorical:
        if c.kind == INTEGER_RANGE:
            sizes.append(c.maximum - c.minimum + 1)
        else:
            sizes.append(c.buckets if c.buckets is not None else factor_buckets[c.column])
    return tuple(sizes)


@dataclass(frozen=True)
class EncodedExamples:
    """Row-aligned tensors: categorical indices [N, len(categorical)], numeric
    [N, len(numeric_features)], labels [N]."""

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
    """The input partitions, by table: the examples, and each history table of the declaration
    (None when no partition of it was given)."""

    examples: pa.Table
    history: dict[str, pa.Table | None]


def read_inputs(
    store: ObjectStore, input_tables: Mapping[str, str], model_inputs: ModelInputs
) -> Inputs:
    """Read the partitions of `input_tables` ({object key: the declared table it is a
    partition of}), in key order (so flag order is irrelevant), and concatenate them by table."""
    ordered = sorted(input_tables)
    if not ordered:
        raise InputDataError("No input keys given: pass at least one --input-key TABLE=KEY")
    declared = model_inputs.tables
    columns_of = {model_inputs.examples.table: model_inputs.example_columns}
    columns_of |= {h.table: h.columns for h in model_inputs.history}
    parts: dict[str, list[pa.Table]] = {}
    for key in ordered:
        table_name = input_tables[key]
        if table_name not in declared:
            raise InputDataError(
                f"{key} is given as a partition of {table_name!r}, which the model-input "
                f"declaration does not read (it reads {list(declared)})"
            )
        if not store.exists(key):
            raise InputDataError(
                f"Input object {store.uri(key)} does not exist; materialize that partition "
                f"of {table_name} first"
            )
        filesystem, path = store.arrow_location(key)
        table = pq.read_table(path, filesystem=filesystem)
        columns = columns_of[table_name]
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise InputDataError(
                f"{store.uri(key)} ({table_name}) lacks columns {missing} that the model-input "
                f"declaration reads (it has {table.column_names})"
            )
        parts.setdefault(table_name, []).append(table.select(list(columns)))
    examples_table = model_inputs.examples.table
    if examples_table not in parts:
        raise InputDataError(f"Input partitions {ordered} hold no {examples_table} partition")
    tables = {}
    for name, name_tables in parts.items():
        try:
            tables[name] = pa.concat_tables(name_tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise InputDataError(f"{name} partitions have incompatible schemas: {err}") from err
    if tables[examples_table].num_rows == 0:
        raise InputDataError(f"Input partitions {ordered} hold no rows")
    return Inputs(
        tables[examples_table], {h.table: tables.get(h.table) for h in model_inputs.history}
    )


def read_examples(
    store: ObjectStore, input_tables: Mapping[str, str], model_inputs: ModelInputs
) -> pa.Table:
    """The examples rows among the partitions of `input_tables`, in key order."""
    examples = read_inputs(store, input_tables, model_inputs).examples
    key = model_inputs.examples.key
    return examples.take(pc.sort_indices(examples, sort_keys=[(key, "ascending")]))


def _days(column: pa.ChunkedArray) -> np.ndarray:
    """date32 values as integer days since the epoch."""
    return column.cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)


def _integers(table: pa.Table, column: str, what: str) -> np.ndarray:
    values = table[column]
    if values.null_count:
        raise InputDataError(f"{what} {column!r} holds {values.null_count} nulls")
    if not pa.types.is_integer(values.type):
        raise InputDataError(f"{what} {column!r} must hold integers (it holds {values.type})")
    return values.to_numpy(zero_copy_only=False).astype(np.int64)


def _history_sums(
    example_days: np.ndarray, example_ids: np.ndarray, rows: pa.Table | None, spec: HistoryTable
) -> tuple[np.ndarray, np.ndarray]:
    """Exposures and positives of each example's key summed over the history rows of the days
    the as-of rule allows (strictly before the example's own day: lag_days >= 1)."""
    exposures = np.zeros(len(example_ids), dtype=np.float64)
    positives = np.zeros(len(example_ids), dtype=np.float64)
    if rows is None or rows.num_rows == 0:
        return exposures, positives
    history_days = _days(rows[spec.day_column])
    ids = _integers(rows, spec.history_key, f"{spec.table} key")
    shown = rows[spec.exposures].to_numpy(zero_copy_only=False).astype(np.float64)
    hits = rows[spec.positives].to_numpy(zero_copy_only=False).astype(np.float64)
    for day in np.unique(example_days):
        last = day - spec.lag_days
        past = history_days <= last
        if spec.window_days is not None:
            past &= history_days > last - spec.window_days
        if not past.any():
            continue
        known, inverse = np.unique(ids[past], return_inverse=True)
        shown_sum = np.bincount(inverse, weights=shown[past], minlength=len(known))
        hit_sum = np.bincount(inverse, weights=hits[past], minlength=len(known))
        at = np.flatnonzero(example_days == day)
        position = np.searchsorted(known, example_ids[at]).clip(max=len(known) - 1)
        found = known[position] == example_ids[at]
        exposures[at[found]] = shown_sum[position[found]]
        positives[at[found]] = hit_sum[position[found]]
    return exposures, positives


def attach_history(
    examples: pa.Table, history: Mapping[str, pa.Table | None], model_inputs: ModelInputs
) -> pa.Table:
    """The examples with every history table's derived inputs appended: for each row, its key's
    exposures and smoothed positive rate over the days the as-of rule allows (a day's
    aggregates include positives made after its exposures, so they may only describe later
    days). No history: zero exposures, the prior's rate, flag 1."""
    days = _days(examples[model_inputs.examples.day_column])
    for spec in model_inputs.history:
        ids = _integers(examples, spec.example_key, "examples join key")
        shown, hits = _history_sums(days, ids, history.get(spec.table), spec)
        rate = (np.minimum(hits, shown) + spec.prior_positives) / (shown + spec.prior_exposures)
        values = (np.log1p(shown), np.log(rate) - np.log1p(-rate), (shown == 0).astype(float))
        for name, column in zip(spec.features, values, strict=True):
            examples = examples.append_column(name, pa.array(column, pa.float64()))
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


def _categorical(table: pa.Table, config: TrainConfig) -> np.ndarray:
    inputs = declaration(config)
    sizes = categorical_cardinalities(config)
    columns = []
    for c, size in zip(inputs.categorical, sizes, strict=True):
        if c.kind == ID_HASH:
            ids = _integers(table, c.column, "id_hash input")
            columns.append((_mix64(ids.view(np.uint64), c.salt) % np.uint64(size)).astype(np.int64))
        elif c.kind == INTEGER_RANGE:
            values = _integers(table, c.column, "integer_range input")
            if len(values) and (values.min() < c.minimum or values.max() > c.maximum):
                raise InputDataError(
                    f"{c.column} outside [{c.minimum}, {c.maximum}]: {values.min()}..{values.max()}"
                )
            columns.append(values - c.minimum)
        else:
            columns.append(_hash_strings(table[c.column], size, salt=c.column))
    return np.stack(columns, axis=1)


def _numeric(table: pa.Table, config: TrainConfig) -> np.ndarray:
    inputs = declaration(config)
    columns = []
    for n in inputs.numeric:
        values = table[n.column].cast(pa.float64()).to_numpy(zero_copy_only=False)
        missing = np.isnan(values)
        present = np.where(missing, 0.0, values)
        columns.append(np.log1p(np.clip(present, 0.0, None)) if n.transform == LOG1P else present)
        if n.missing_indicator:
            columns.append(missing.astype(np.float64))
    if config.history_features:
        derived = [f for h in inputs.history for f in h.features]
        absent = [c for c in derived if c not in table.column_names]
        if absent:
            raise InputDataError(
                f"history_features is on but the examples lack {absent}: join the history "
                "tables first (attach_history)"
            )
        columns += [
            table[name].to_numpy(zero_copy_only=False).astype(np.float64) for name in derived
        ]
    return np.stack(columns, axis=1) if columns else np.zeros((table.num_rows, 0))


def encode(table: pa.Table, config: TrainConfig) -> EncodedExamples:
    """Arrow rows to tensors, as the config's declaration says; the same rows always give the
    same tensors."""
    label = declaration(config).examples.label
    labels = table[label].to_numpy(zero_copy_only=False).astype(np.float32)
    return EncodedExamples(
        categorical=torch.from_numpy(np.ascontiguousarray(_categorical(table, config))),
        numeric=torch.from_numpy(_numeric(table, config).astype(np.float32)),
        label=torch.from_numpy(labels),
    )


def eval_mask(keys: Sequence[str] | pa.ChunkedArray, fraction: float) -> np.ndarray:
    """True for held-out rows. Hashing the example's key (not a random draw) keeps each example
    on the same side of the split whatever window, seed or rank reads it, so eval never leaks
    into training when the window slides. Non-string keys are hashed as their text."""
    values = keys.to_pylist() if isinstance(keys, pa.ChunkedArray) else keys
    threshold = int(fraction * 2**64)
    return np.fromiter(
        (
            _string_hash(v if isinstance(v, str) else str(v), "eval-split") < threshold
            for v in values
        ),
        dtype=bool,
        count=len(values),
    )


def load_dataset(
    store: ObjectStore, input_tables: Mapping[str, str], config: TrainConfig
) -> Dataset:
    """The declared examples of `input_tables` ({object key: table}), history joined when
    `history_features` is on, encoded and split by the key's hash."""
    inputs = declaration(config)
    read = read_inputs(store, input_tables, inputs)
    # Row order inside the window is fixed by the key, not by how the partitions were written.
    key = inputs.examples.key
    table = read.examples.take(pc.sort_indices(read.examples, sort_keys=[(key, "ascending")]))
    if config.history_features:
        absent = [name for name, rows in read.history.items() if rows is None]
        if absent:
            raise InputDataError(
                f"history_features is on but no partition of {absent} is among the input keys: "
                "pass the history partitions of the window's days before the trained day, or "
                "set history_features false"
            )
        table = attach_history(table, read.history, inputs)
    held_out = eval_mask(table[key], config.eval_fraction)
    encoded = encode(table, config)
    train_idx = torch.from_numpy(np.flatnonzero(~held_out))
    eval_idx = torch.from_numpy(np.flatnonzero(held_out))
    return Dataset(
        train=encoded.take(train_idx), eval=encoded.take(eval_idx), input_rows=table.num_rows
    )
