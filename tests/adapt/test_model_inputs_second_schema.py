"""The trainer on a second schema, declared only here: other table names, key columns, join
keys, categorical and numeric columns, an integer example key and a boolean label. It reads,
joins as of the declared days, encodes, trains a few steps (in-process, streaming and through
the CLI) and is scored with its own segment column, with no change to training/.

The data: purchases of products by customers over four days. A customer converts more often
when the customer id is even and on the "app" channel; each history table counts visits (or
views) and purchases (or buys) per key and day.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources.storage.object_store import LocalObjectStore
from training import cli
from training.config import TrainConfig
from training.data import (
    InputDataError,
    attach_history,
    categorical_cardinalities,
    load_dataset,
    numeric_features,
    read_inputs,
)
from training.evaluate import score_models
from training.loop import train
from training.model import build_model
from training.model_inputs import (
    ID_HASH,
    INTEGER_RANGE,
    LOG1P,
    STRING_HASH,
    CategoricalInput,
    ExamplesTable,
    Factorized,
    HistoryTable,
    ModelInputs,
    NumericInput,
)
from training.streaming import ExampleSource, StreamingBatches

DAYS = tuple(dt.date(2027, 3, 1) + dt.timedelta(days=i) for i in range(4))
CHANNELS = ("app", "web", "store")

SECOND = ModelInputs(
    examples=ExamplesTable(
        table="basket_outcomes", key="basket_no", day_column="day", label="converted"
    ),
    categorical=(
        CategoricalInput("channel", STRING_HASH, buckets=8),
        CategoricalInput("customer", ID_HASH, salt=7),
        CategoricalInput("weekday", INTEGER_RANGE, minimum=1, maximum=7),
        CategoricalInput("product", ID_HASH, salt=8),
        CategoricalInput("store_no", ID_HASH, buckets=32, salt=3),
    ),
    numeric=(
        NumericInput("basket_value", transform=LOG1P, missing_indicator=True),
        NumericInput("discount"),
    ),
    factorized=Factorized(user="customer", item="product"),
    history=(
        HistoryTable(
            table="customer_days",
            example_key="customer",
            history_key="cust",
            day_column="as_of",
            exposures="visits",
            positives="purchases",
            prefix="cust",
            window_days=2,
        ),
        HistoryTable(
            table="product_days",
            example_key="product",
            history_key="sku",
            day_column="d",
            exposures="views",
            positives="buys",
            prefix="prod",
            lag_days=2,
            prior_positives=1.0,
            prior_exposures=20.0,
        ),
    ),
    segments=("channel",),
)
CONFIG = TrainConfig(
    embedding_dim=4,
    hidden_sizes=(8,),
    user_buckets=64,
    item_buckets=32,
    batch_size=32,
    total_steps=12,
    warmup_steps=2,
    checkpoint_every_steps=5,
    log_every_steps=4,
    seed=3,
    eval_fraction=0.25,
    history_features=True,
    model_inputs=SECOND,
)


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _day_tables(day: dt.date, index: int) -> dict[str, pa.Table]:
    rng = np.random.default_rng(100 + index)
    rows = 240
    customer = rng.integers(0, 40, rows)
    product = rng.integers(0, 25, rows)
    channel = rng.choice(CHANNELS, rows)
    rate = 0.1 + 0.5 * (customer % 2 == 0) * (channel == "app")
    converted = rng.random(rows) < rate
    value = rng.gamma(2.0, 20.0, rows)
    examples = pa.table(
        {
            "basket_no": pa.array(index * 10_000 + np.arange(rows), pa.int64()),
            "day": pa.array([day] * rows, pa.date32()),
            "customer": pa.array(customer, pa.int64()),
            "product": pa.array(product, pa.int32()),
            "channel": pa.array([None if i % 17 == 0 else c for i, c in enumerate(channel)]),
            "weekday": pa.array([day.isoweekday()] * rows, pa.int8()),
            "store_no": pa.array(rng.integers(0, 500, rows), pa.int64()),
            "basket_value": pa.array([None if i % 11 == 0 else v for i, v in enumerate(value)]),
            "discount": pa.array(rng.random(rows), pa.float32()),
            "converted": pa.array(converted, pa.bool_()),
            "unused_note": pa.array(["n"] * rows),
        }
    )

    def per_key(keys: np.ndarray, key_name: str, day_name: str, seen: str, hit: str):
        known, inverse = np.unique(keys, return_inverse=True)
        return pa.table(
            {
                key_name: pa.array(known, pa.int64()),
                day_name: pa.array([day] * len(known), pa.date32()),
                seen: pa.array(np.bincount(inverse), pa.int64()),
                hit: pa.array(np.bincount(inverse, weights=converted).astype(int), pa.int64()),
            }
        )

    return {
        "basket_outcomes": examples,
        "customer_days": per_key(customer, "cust", "as_of", "visits", "purchases"),
        "product_days": per_key(product, "sku", "d", "views", "buys"),
    }


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[LocalObjectStore, dict[str, str], dict[str, str]]:
    """Every table's partitions in a store: (store, {key: table}, {key: sha256})."""
    store = LocalObjectStore(tmp_path_factory.mktemp("second-schema"))
    tables, versions = {}, {}
    for index, day in enumerate(DAYS):
        for name, table in _day_tables(day, index).items():
            key = f"published/{name}/{day}.parquet"
            data = _parquet(table)
            store.put_bytes(key, data)
            tables[key], versions[key] = name, hashlib.sha256(data).hexdigest()
    return store, tables, versions


def test_it_reads_and_joins_the_declared_tables_as_of_the_declared_days(published):
    store, tables, _ = published
    inputs = read_inputs(store, tables, SECOND)
    assert set(inputs.examples.column_names) == set(SECOND.example_columns)  # not unused_note
    joined = attach_history(inputs.examples, inputs.history, SECOND)
    # Customers: the two days before the example's (window 2, lag 1); products: up to two days
    # before (lag 2). Checked against the slow obvious sum.
    visits = inputs.history["customer_days"].to_pylist()
    views = inputs.history["product_days"].to_pylist()
    for row in joined.slice(0, 400).to_pylist() + joined.slice(700).to_pylist():
        day = row["day"]
        expected_visits = sum(
            v["visits"]
            for v in visits
            if v["cust"] == row["customer"] and day - dt.timedelta(days=2) <= v["as_of"] < day
        )
        expected_views = sum(
            v["views"]
            for v in views
            if v["sku"] == row["product"] and v["d"] <= day - dt.timedelta(days=2)
        )
        assert np.expm1(row["cust_log_visits"]) == pytest.approx(expected_visits)
        assert np.expm1(row["prod_log_views"]) == pytest.approx(expected_views)
        assert row["cust_no_history"] == float(expected_visits == 0)
    first_day = [r for r in joined.to_pylist() if r["day"] == DAYS[0]]
    assert all(r["cust_no_history"] == 1.0 and r["prod_no_history"] == 1.0 for r in first_day)


def test_it_encodes_with_the_declared_widths(published):
    store, tables, _ = published
    dataset = load_dataset(store, tables, CONFIG)
    assert categorical_cardinalities(CONFIG) == (8, 64, 7, 32, 32)
    assert numeric_features(CONFIG) == (
        "log1p_basket_value", "basket_value_missing", "discount",
        "cust_log_visits", "cust_rate_logit", "cust_no_history",
        "prod_log_views", "prod_rate_logit", "prod_no_history",
    )  # fmt: skip
    assert dataset.input_rows == 240 * len(DAYS)
    assert dataset.train.categorical.shape[1] == 5 and dataset.train.numeric.shape[1] == 9
    everything = dataset.train.categorical
    for column, size in enumerate(categorical_cardinalities(CONFIG)):
        assert int(everything[:, column].min()) >= 0
        assert int(everything[:, column].max()) < size
    assert int(everything[:, 2].max()) <= 6  # weekday 1..7 -> 0..6
    labels = set(dataset.train.label.tolist())
    assert labels == {0.0, 1.0}
    model = build_model(CONFIG)
    assert model.user_factors.num_embeddings == 64 and model.item_factors.num_embeddings == 32
    assert len(model.context) == 3  # channel, weekday, store_no
    # The same rows, keys given in another order: the same tensors.
    again = load_dataset(store, dict(reversed(tables.items())), CONFIG)
    assert (again.train.categorical == dataset.train.categorical).all()
    assert (again.eval.numeric == dataset.eval.numeric).all()


def test_it_trains_and_is_scored_on_its_own_segments(published, tmp_path):
    source, tables, versions = published
    store = LocalObjectStore(tmp_path / "store")
    for key in tables:
        store.put_bytes(key, source.get_bytes(key))
    result = train(
        store,
        input_tables=tables,
        checkpoint_prefix="checkpoints/second/run",
        config=CONFIG,
        input_data_versions=versions,
        code_version="second-schema-test",
        device="cpu",
    )
    summary = result.summary
    assert result.status == "completed" and summary["steps"] == CONFIG.total_steps
    assert summary["checkpoint_key"] == "checkpoints/second/run/step-000012"
    assert summary["metrics"]["eval_examples"] > 100
    manifest = store.get_bytes(f"{summary['checkpoint_key']}/manifest.json")
    model = {
        "checkpoint_key": summary["checkpoint_key"],
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "config": CONFIG.to_dict(),
    }
    scores = score_models(
        store, {"candidate": model}, input_tables=tables, model_inputs=SECOND,
        eval_fraction=CONFIG.eval_fraction,
    )  # fmt: skip
    candidate = scores["candidate"]
    assert list(candidate["segments"]) == ["channel"]
    assert set(candidate["segments"]["channel"]) == {*CHANNELS, "null"}
    rows = sum(s["rows"] for s in candidate["segments"]["channel"].values())
    assert rows == candidate["examples"]
    assert scores["baseline"]["log_loss"] is not None


def test_the_cli_trains_it_from_json_alone(published, tmp_path, monkeypatch, capsys):
    """What the Dagster asset does: the declaration inside --config-json, each key's table in
    --input-key TABLE=KEY; nothing imported from the project's own declaration."""
    source, tables, versions = published
    root = tmp_path / "store"
    store = LocalObjectStore(root)
    for key in tables:
        store.put_bytes(key, source.get_bytes(key))
    monkeypatch.setattr(cli, "install_sigterm_handler", threading.Event)
    config = {**CONFIG.to_dict(), "total_steps": 6, "warmup_steps": 1}
    args = ["--store-root", str(root)]
    args += [arg for key in sorted(tables) for arg in ("--input-key", f"{tables[key]}={key}")]
    args += [
        "--checkpoint-prefix", "checkpoints/second/cli",
        "--config-json", json.dumps(config),
        "--input-data-versions-json", json.dumps(versions),
        "--code-version", "second-schema-test", "--device", "cpu",
    ]  # fmt: skip
    assert cli.main(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    summary = next(line for line in lines if line.get("event") == "summary")
    assert summary["steps"] == 6 and summary["status"] == "completed"
    # A key without its table is refused before anything is read.
    bare = [a.split("=", 1)[1] if a.startswith("basket_outcomes=") else a for a in args]
    assert cli.main(bare) == cli.EXIT_BAD_INPUT
    assert "must be TABLE=KEY" in capsys.readouterr().out


def _rows(examples) -> list[tuple]:
    return sorted(
        (*c.tolist(), *n.tolist(), float(y))
        for c, n, y in zip(examples.categorical, examples.numeric, examples.label, strict=True)
    )


def test_it_streams_the_declared_tables_like_it_loads_them(published, tmp_path):
    """The streaming data path from the same declaration: the examples written in several row
    groups are streamed, joined and encoded into the in-memory path's rows, split the same way,
    and a streaming run trains and is scored."""
    source, tables, versions = published
    store = LocalObjectStore(tmp_path / "store")
    for key in tables:
        table = pq.read_table(io.BytesIO(source.get_bytes(key)))
        sink = io.BytesIO()
        pq.write_table(table, sink, row_group_size=80)  # three row groups a day
        store.put_bytes(key, sink.getvalue())
    config = TrainConfig.from_dict(
        {**CONFIG.to_dict(), "data_loading": "streaming", "shuffle_buffer_rows": 200}
    )
    loaded = load_dataset(store, tables, config)
    batches = StreamingBatches(ExampleSource(store, tables, config), config, 0, 1)
    assert len(batches.source.row_groups) == 3 * len(DAYS)
    assert batches.train_examples == len(loaded.train)
    epoch = [batches.next_batch() for _ in range(batches.batches_in_epoch(0))]
    served = [row for batch in epoch for row in _rows(batch)]
    train_rows = _rows(loaded.train)
    assert len(served) == len(set(served)) and set(served) <= set(train_rows)
    assert len(train_rows) - len(served) < 80 + CONFIG.batch_size
    held_out = [row for chunk in batches.held_out() for row in _rows(chunk)]
    assert sorted(held_out) == _rows(loaded.eval)

    result = train(
        store,
        input_tables=tables,
        checkpoint_prefix="checkpoints/second/streamed",
        config=config,
        input_data_versions=versions,
        code_version="second-schema-test",
        device="cpu",
    )
    assert result.status == "completed" and result.summary["steps"] == CONFIG.total_steps
    metrics = result.summary["metrics"]
    assert metrics["eval_examples"] == len(loaded.eval)
    assert metrics["train_examples"] == len(loaded.train)


def test_a_partition_missing_a_declared_column_is_refused_naming_it(published, tmp_path):
    source, tables, _ = published
    store = LocalObjectStore(tmp_path / "store")
    key = next(k for k, t in tables.items() if t == "basket_outcomes")
    table = pq.read_table(io.BytesIO(source.get_bytes(key))).drop_columns(["discount"])
    store.put_bytes(key, _parquet(table))
    with pytest.raises(InputDataError, match=r"\(basket_outcomes\) lacks columns \['discount'\]"):
        read_inputs(store, {key: "basket_outcomes"}, SECOND)
    # And without the declared history tables, history_features refuses naming them.
    with pytest.raises(InputDataError, match=r"no partition of.*customer_days"):
        load_dataset(source, {key: "basket_outcomes"}, CONFIG)
