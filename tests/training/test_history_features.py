"""The history inputs (the example's user/item history tables, as contract/model_inputs.py
declares them): each example sees the history of the days before its own day and nothing else
(no leakage), the as-of rule's lag and window are honoured, the join is deterministic and
independent of key order, and a model that needs them refuses to train without them."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch

from assets.features.logic import item_daily_features, training_examples, user_daily_features
from assets.publishing.parquet import to_parquet_bytes
from contract.model_inputs import CTR_MODEL_INPUTS
from resources.storage.object_store import LocalObjectStore
from scripts.synthetic_events import generate_events
from training.config import TrainConfig
from training.data import (
    InputDataError,
    attach_history,
    load_dataset,
    numeric_features,
    read_inputs,
)

DAYS = tuple(dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(3))
TABLES = {
    "training_examples": training_examples,
    "user_daily_features": user_daily_features,
    "item_daily_features": item_daily_features,
}
CONFIG = TrainConfig(
    user_buckets=512,
    item_buckets=256,
    eval_fraction=0.2,
    history_features=True,
    model_inputs=CTR_MODEL_INPUTS,
)
HISTORY_FEATURES = tuple(f for spec in CTR_MODEL_INPUTS.history for f in spec.features)


def _key(asset: str, day: dt.date) -> str:
    return f"features/{asset}/{day:%Y-%m-%d}.parquet"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> LocalObjectStore:
    """Three days of every table the trainer reads, as the pipeline writes them."""
    store = LocalObjectStore(tmp_path_factory.mktemp("history"))
    for day in DAYS:
        events = generate_events(day, 800)
        for asset, compute in TABLES.items():
            store.put_bytes(_key(asset, day), to_parquet_bytes(compute(events, day)).data)
    return store


def _keys(*assets: str, days=DAYS) -> dict[str, str]:
    return {_key(asset, day): asset for asset in assets for day in days}


ALL_KEYS = _keys(*TABLES)


def _reference(
    examples: pa.Table, features: pa.Table, id_column: str, lag: int = 1, window: int = 10**4
) -> np.ndarray:
    """Impressions of each example's user/item summed over the feature days in
    [day - lag - window + 1, day - lag], the slow obvious way."""
    rows = features.to_pylist()
    out = []
    for example in examples.select(["feature_date", id_column]).to_pylist():
        last = example["feature_date"] - dt.timedelta(days=lag)
        out.append(
            sum(
                row["impressions"]
                for row in rows
                if row[id_column] == example[id_column]
                and last - dt.timedelta(days=window) < row["feature_date"] <= last
            )
        )
    return np.array(out, dtype=np.float64)


def test_history_is_the_sum_over_the_days_before_the_examples_day(store):
    inputs = read_inputs(store, ALL_KEYS, CTR_MODEL_INPUTS)
    joined = attach_history(inputs.examples, inputs.history, CTR_MODEL_INPUTS)
    for prefix, id_column, features in (
        ("user", "user_id", inputs.history["user_daily_features"]),
        ("item", "item_id", inputs.history["item_daily_features"]),
    ):
        expected = _reference(joined, features, id_column)
        assert np.allclose(np.expm1(joined[f"{prefix}_log_impressions"].to_numpy()), expected)
        assert (joined[f"{prefix}_no_history"].to_numpy() == (expected == 0)).all()
    # The first day has no earlier day: no example of it has any history.
    first = pc.equal(joined["feature_date"], pa.scalar(DAYS[0], pa.date32()))
    assert pc.all(pc.equal(joined.filter(first)["user_no_history"], 1.0)).as_py()
    later = joined.filter(pc.invert(first))
    assert pc.min(later["user_no_history"]).as_py() == 0.0


@pytest.mark.parametrize(("lag", "window"), [(2, None), (1, 1)])
def test_the_as_of_rule_reads_only_the_declared_days(store, lag, window):
    """A declared lag of 2 skips the day before; a one-day window reads only the day before."""
    declared = dataclasses.replace(
        CTR_MODEL_INPUTS,
        history=tuple(
            dataclasses.replace(spec, lag_days=lag, window_days=window)
            for spec in CTR_MODEL_INPUTS.history
        ),
    )
    inputs = read_inputs(store, ALL_KEYS, declared)
    joined = attach_history(inputs.examples, inputs.history, declared)
    features = inputs.history["user_daily_features"]
    expected = _reference(joined, features, "user_id", lag=lag, window=window or 10**4)
    assert np.allclose(np.expm1(joined["user_log_impressions"].to_numpy()), expected)
    everything = _reference(joined, features, "user_id")
    assert (expected < everything).any()  # the rule excluded days that were given


def test_no_leakage_a_days_own_features_never_reach_its_examples(store, tmp_path):
    """Replace day 2's user and item features with absurd numbers: the encoded rows of days 1
    and 2 do not change at all, the rows of day 3 (whose history includes day 2) do."""
    baseline = read_inputs(store, ALL_KEYS, CTR_MODEL_INPUTS)
    base = attach_history(baseline.examples, baseline.history, CTR_MODEL_INPUTS)

    def poisoned(table: pa.Table) -> pa.Table:
        day_two = pc.equal(table["feature_date"], pa.scalar(DAYS[1], pa.date32()))
        for column in ("impressions", "clicks"):
            values = pc.if_else(day_two, pa.scalar(10**6, pa.int64()), table[column])
            table = table.set_column(table.schema.get_field_index(column), column, values)
        return table

    changed = attach_history(
        baseline.examples,
        {name: poisoned(table) for name, table in baseline.history.items()},
        CTR_MODEL_INPUTS,
    )
    same_day_or_earlier = np.array([d <= DAYS[1] for d in base["feature_date"].to_pylist()])
    for name in HISTORY_FEATURES:
        before, after = base[name].to_numpy(), changed[name].to_numpy()
        assert np.array_equal(before[same_day_or_earlier], after[same_day_or_earlier]), name
    assert not np.array_equal(
        base["user_log_impressions"].to_numpy()[~same_day_or_earlier],
        changed["user_log_impressions"].to_numpy()[~same_day_or_earlier],
    )

    # And through the trainer's own reader: the last day's features (the trained day's own)
    # change nothing, so whether they are passed or not the tensors are identical.
    without_last = _keys("training_examples") | _keys(
        "user_daily_features", "item_daily_features", days=DAYS[:-1]
    )
    a, b = load_dataset(store, ALL_KEYS, CONFIG), load_dataset(store, without_last, CONFIG)
    assert torch.equal(a.train.numeric, b.train.numeric)
    assert torch.equal(a.eval.numeric, b.eval.numeric)


def test_history_tensors_are_deterministic_and_independent_of_key_order(store):
    first = load_dataset(store, ALL_KEYS, CONFIG)
    second = load_dataset(store, dict(reversed(ALL_KEYS.items())), CONFIG)
    assert first.train.numeric.shape[1] == len(numeric_features(CONFIG)) == 8
    for a, b in ((first.train, second.train), (first.eval, second.eval)):
        assert torch.equal(a.numeric, b.numeric) and torch.equal(a.categorical, b.categorical)
    # Without history the model's inputs are what they always were.
    plain = load_dataset(store, ALL_KEYS, dataclasses.replace(CONFIG, history_features=False))
    assert plain.train.numeric.shape[1] == 2
    assert torch.equal(plain.train.numeric, first.train.numeric[:, :2])


def test_history_features_without_feature_partitions_are_refused(store):
    with pytest.raises(InputDataError, match="history_features is on but no partition"):
        load_dataset(store, _keys("training_examples", "user_daily_features"), CONFIG)
    with pytest.raises(InputDataError, match="no training_examples partition"):
        read_inputs(store, _keys("user_daily_features"), CTR_MODEL_INPUTS)


def test_a_partition_is_the_table_it_is_given_as_never_guessed_from_columns(store):
    """The caller names each key's table; a key given as a table the declaration does not read,
    or given as the wrong table, is refused naming the key, the table and the columns."""
    examples_key = next(iter(_keys("training_examples")))
    with pytest.raises(InputDataError, match="does not read"):
        read_inputs(store, {examples_key: "some_other_table"}, CTR_MODEL_INPUTS)
    history_key = next(iter(_keys("user_daily_features")))
    with pytest.raises(InputDataError, match=r"\(training_examples\) lacks columns"):
        read_inputs(store, {history_key: "training_examples"}, CTR_MODEL_INPUTS)
