"""The streaming data path: an epoch serves each training row at most once and no held-out row,
the held-out rows are the in-memory split's, ranks and loader workers read disjoint rows, the
shuffle window stays within its buffer, and a stream restarted at any position serves exactly
the batches the uninterrupted stream served from there."""

from __future__ import annotations

import datetime as dt
import itertools

import pyarrow.parquet as pq
import pytest

from assets.features.logic import (
    as_table,
    item_daily_features,
    training_examples,
    user_daily_features,
)
from contract.model_inputs import CTR_MODEL_INPUTS
from resources.storage.object_store import LocalObjectStore
from scripts.synthetic_events import generate_events
from training.config import ConfigError, TrainConfig, fingerprint
from training.data import EncodedExamples, InputDataError, load_dataset
from training.sampler import DataPosition
from training.streaming import EpochPlan, ExampleSource, StreamingBatches

DAYS = tuple(dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(3))
TABLES = {
    "training_examples": training_examples,
    "user_daily_features": user_daily_features,
    "item_daily_features": item_daily_features,
}
BASE = {
    "user_buckets": 512,
    "item_buckets": 256,
    "eval_fraction": 0.2,
    "batch_size": 32,
    "seed": 5,
    "data_loading": "streaming",
    "shuffle_buffer_rows": 400,
    "history_features": True,
    "model_inputs": CTR_MODEL_INPUTS,
}


def _key(asset: str, day: dt.date) -> str:
    return f"features/{asset}/{day:%Y-%m-%d}.parquet"


# {object key: table}: what the trainer is told each input is.
KEYS = {_key(asset, day): asset for asset in TABLES for day in DAYS}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> LocalObjectStore:
    """Three days of every table, the examples written in row groups of 250 rows."""
    store = LocalObjectStore(tmp_path_factory.mktemp("streaming"))
    for day in DAYS:
        events = generate_events(day, 900)
        for asset, compute in TABLES.items():
            path = store.root / _key(asset, day)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(as_table(compute(events, day)), path, row_group_size=250)
    return store


def _rows(examples: EncodedExamples) -> list[tuple]:
    """Each row as a hashable tuple of its encoded values (categorical, numeric, label)."""
    return [
        (*c.tolist(), *n.tolist(), float(y))
        for c, n, y in zip(examples.categorical, examples.numeric, examples.label, strict=True)
    ]


def _batches(batches: StreamingBatches, count: int) -> list[list[tuple]]:
    return [_rows(batches.next_batch()) for _ in range(count)]


def _streaming(store, rank: int = 0, world_size: int = 1, **overrides) -> StreamingBatches:
    config = TrainConfig(**{**BASE, **overrides})
    return StreamingBatches(ExampleSource(store, KEYS, config), config, rank, world_size)


@pytest.mark.parametrize("workers", [0, 2])
def test_an_epoch_serves_training_rows_once_and_holds_out_the_in_memory_split(store, workers):
    batches = _streaming(store, loader_workers=workers)
    in_memory = load_dataset(store, KEYS, TrainConfig(**BASE))
    per_epoch = batches.batches_in_epoch(0)
    served = [row for batch in _batches(batches, per_epoch) for row in batch]
    assert batches.position().epoch == 1 and batches.position().batch_index == 0
    assert len(served) == per_epoch * BASE["batch_size"]
    train = _rows(in_memory.train)
    assert batches.train_examples == len(train)
    # Each row at most once: the encoded rows carry the event's user, item, hour and context,
    # so two equal tuples would be two copies of a row only if the window held duplicates too.
    assert _multiset_within(served, train)
    assert len(train) - len(served) < (workers or 1) * 250 + BASE["batch_size"]
    held_out = [row for chunk in batches.source.held_out() for row in _rows(chunk)]
    assert sorted(held_out) == sorted(_rows(in_memory.eval))


def _multiset_within(rows: list[tuple], pool: list[tuple]) -> bool:
    available: dict[tuple, int] = {}
    for row in pool:
        available[row] = available.get(row, 0) + 1
    for row in rows:
        if not available.get(row):
            return False
        available[row] -= 1
    return True


@pytest.mark.parametrize("workers", [0, 2])
def test_a_restart_at_any_position_serves_the_uninterrupted_batches(store, workers):
    reference = _streaming(store, loader_workers=workers)
    per_epoch = reference.batches_in_epoch(0)
    total = per_epoch + 7  # into the second epoch
    expected = _batches(reference, total)
    for start in (1, 4, 5, per_epoch - 1, per_epoch + 3):
        position = DataPosition(start // per_epoch, start % per_epoch, BASE["seed"], 32)
        resumed = _streaming(store, loader_workers=workers)
        resumed.restore(position)
        assert _batches(resumed, total - start) == expected[start:], f"start {start}"
    # And the order really is shuffled per epoch: the second epoch is not the first again.
    assert expected[per_epoch : per_epoch + 7] != expected[:7]


def test_ranks_read_disjoint_rows_and_step_together(store):
    ranks = [_streaming(store, rank=rank, world_size=2, loader_workers=2) for rank in range(2)]
    per_epoch = {rank.batches_in_epoch(0) for rank in ranks}
    assert len(per_epoch) == 1
    [count] = per_epoch
    served = [[row for batch in _batches(rank, count) for row in batch] for rank in ranks]
    pool = _rows(load_dataset(store, KEYS, TrainConfig(**BASE)).train)
    assert _multiset_within(served[0] + served[1], pool)


def test_shuffle_windows_stay_within_the_buffer_and_every_row_group_is_dealt(store):
    source = ExampleSource(store, KEYS, TrainConfig(**BASE))
    assert len(source.row_groups) == 12  # 900 impressions a day in row groups of 250
    plan = EpochPlan(source.train_rows, source.config, epoch=3, streams=3)
    dealt = [group for stream in plan.windows for window in stream for group in window]
    assert sorted(dealt) == list(range(len(source.row_groups)))
    for stream in plan.windows:
        for window in stream:
            assert len(window) == 1 or source.train_rows[window].sum() <= 400
    other = EpochPlan(source.train_rows, source.config, epoch=4, streams=3)
    assert other.windows != plan.windows


def test_streaming_inputs_are_checked_like_the_in_memory_ones(store):
    config = TrainConfig(**BASE)
    with pytest.raises(InputDataError, match="item_daily_features"):
        ExampleSource(store, {k: t for k, t in KEYS.items() if t != "item_daily_features"}, config)
    with pytest.raises(InputDataError, match="no training_examples"):
        ExampleSource(store, {k: t for k, t in KEYS.items() if t != "training_examples"}, config)
    with pytest.raises(InputDataError, match="does not exist"):
        missing = _key("training_examples", dt.date(2026, 12, 1))
        ExampleSource(store, {**KEYS, missing: "training_examples"}, config)
    # The table each key is comes from the caller and the declaration, never from its columns.
    example_key = _key("training_examples", DAYS[0])
    with pytest.raises(InputDataError, match="declaration does not read"):
        ExampleSource(store, {**KEYS, example_key: "some_other_table"}, config)
    with pytest.raises(InputDataError, match="lacks columns"):
        ExampleSource(store, {**KEYS, example_key: "user_daily_features"}, config)
    with pytest.raises(ConfigError, match="model_inputs is not set"):
        ExampleSource(store, KEYS, TrainConfig(**{**BASE, "model_inputs": None}))
    with pytest.raises(InputDataError, match="streams"):
        _streaming(store, batch_size=4096)


def test_streaming_fields_enter_the_fingerprint_only_when_streaming():
    versions = {"k": "v"}
    base = fingerprint(TrainConfig(), versions, "c")
    assert base == fingerprint(TrainConfig(shuffle_buffer_rows=10, loader_workers=3), versions, "c")
    streaming = fingerprint(TrainConfig(data_loading="streaming"), versions, "c")
    assert streaming != base
    assert streaming != fingerprint(
        TrainConfig(data_loading="streaming", loader_workers=1), versions, "c"
    )
    for bad in ({"data_loading": "lazy"}, {"loader_workers": -1}, {"shuffle_buffer_rows": 0}):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)
    with pytest.raises(ConfigError, match="data_loading has the wrong type"):
        TrainConfig.from_dict({"data_loading": 1})


def test_batches_are_deterministic_across_loaders(store):
    first = _batches(_streaming(store, loader_workers=2), 9)
    assert first == _batches(_streaming(store, loader_workers=2), 9)
    assert list(itertools.chain(*first)) != list(itertools.chain(*_batches(_streaming(store), 9)))
