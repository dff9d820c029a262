"""Unit tests of the pure pieces: config and fingerprint, encoding and split, the sampler,
metrics, the LR schedule, RNG capture, the model."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import itertools
import json
import random
import threading

import numpy as np
import pyarrow as pa
import pytest
import torch

from assets.features.logic import TRAINING_EXAMPLES_SCHEMA
from assets.publishing.parquet import to_parquet_bytes
from contract.model_inputs import CTR_MODEL_INPUTS
from resources.storage.object_store import LocalObjectStore
from tests.support.trainer_process import INPUT_KEYS, INPUT_TABLES, TINY_CONFIG, trainer_args
from training import cli, rng
from training.config import ConfigError, TrainConfig, fingerprint, resolve_input_versions
from training.data import eval_mask, load_dataset, read_examples
from training.metrics import log_loss, roc_auc
from training.model import build_model, loss_fn
from training.optim import build_optimizer, lr_multiplier
from training.sampler import BatchSampler

VERSIONS = {"k1": "sha-1", "k2": "sha-2"}


def test_config_round_trips_and_refuses_bad_values():
    config = TrainConfig(hidden_sizes=(8, 4), lr=0.01)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig.from_dict({"hidden_sizes": [8, 4], "lr": 0.01}) == config
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="keep_last"):
        TrainConfig(keep_last=1)
    with pytest.raises(ConfigError, match="lr has the wrong type"):
        TrainConfig.from_dict({"lr": "0.01"})
    with pytest.raises(ConfigError, match="warmup_steps"):
        TrainConfig(total_steps=10, warmup_steps=11)


def test_fingerprint_covers_result_affecting_inputs_only():
    base = fingerprint(TrainConfig(), VERSIONS, "v1")
    assert base == fingerprint(TrainConfig(), dict(reversed(VERSIONS.items())), "v1")
    assert len(base) == 64
    assert base != fingerprint(TrainConfig(lr=0.5), VERSIONS, "v1")
    assert fingerprint(TrainConfig(lr=1), VERSIONS, "v1") == fingerprint(
        TrainConfig(lr=1.0), VERSIONS, "v1"
    )
    assert base != fingerprint(TrainConfig(), {**VERSIONS, "k2": "sha-3"}, "v1")
    assert base != fingerprint(TrainConfig(), VERSIONS, "v2")
    # Cadence of saves and logs does not change the weights, so it does not orphan checkpoints.
    operational = TrainConfig(checkpoint_every_steps=7, checkpoint_every_seconds=1.0, keep_last=5)
    assert base == fingerprint(operational, VERSIONS, "v1")
    # What the model reads is part of it: another declaration, another model.
    declared = TrainConfig(model_inputs=CTR_MODEL_INPUTS)
    assert base != fingerprint(declared, VERSIONS, "v1")
    fewer = dataclasses.replace(CTR_MODEL_INPUTS, segments=())
    assert fingerprint(declared, VERSIONS, "v1") != fingerprint(
        TrainConfig(model_inputs=fewer), VERSIONS, "v1"
    )
    assert TrainConfig.from_dict(declared.to_dict()) == declared


def test_input_versions_must_name_exactly_the_input_keys():
    assert resolve_input_versions(["k2", "k1"], VERSIONS) == VERSIONS
    assert resolve_input_versions(["k1"], {}) == {"k1": "unversioned"}
    with pytest.raises(ConfigError, match="missing versions"):
        resolve_input_versions(["k1", "k3"], VERSIONS)


def test_encoding_is_deterministic_and_independent_of_key_order(inputs):
    store = LocalObjectStore(inputs.root)
    config = TrainConfig(
        user_buckets=64, item_buckets=32, eval_fraction=0.25, model_inputs=CTR_MODEL_INPUTS
    )
    first = load_dataset(store, INPUT_TABLES, config)
    second = load_dataset(store, dict(reversed(INPUT_TABLES.items())), config)
    for a, b in ((first.train, second.train), (first.eval, second.eval)):
        assert torch.equal(a.categorical, b.categorical)
        assert torch.equal(a.numeric, b.numeric) and torch.equal(a.label, b.label)
    assert len(first.train) + len(first.eval) == first.input_rows
    assert 0.15 < len(first.eval) / first.input_rows < 0.35
    assert int(first.train.categorical[:, 0].max()) < 64
    assert int(first.train.categorical[:, 1].max()) < 32


def test_eval_split_follows_the_event_not_the_window(inputs):
    store = LocalObjectStore(inputs.root)
    window = read_examples(store, INPUT_TABLES, CTR_MODEL_INPUTS)
    one_day = read_examples(store, {INPUT_KEYS[0]: INPUT_TABLES[INPUT_KEYS[0]]}, CTR_MODEL_INPUTS)
    window_ids = window["event_id"].to_pylist()
    held_window = dict(zip(window_ids, eval_mask(window["event_id"], 0.2), strict=True))
    day_ids = one_day["event_id"].to_pylist()
    held_day = eval_mask(one_day["event_id"], 0.2)
    assert held_day.any() and not held_day.all()
    assert all(held_window[e] == h for e, h in zip(day_ids, held_day, strict=True))


def test_missing_strings_and_prices_encode_to_the_reserved_bucket(tmp_path):
    rows = {
        "feature_date": [dt.date(2026, 11, 1)] * 2,
        "event_id": ["e1", "e2"],
        "user_id": [1, 2],
        "item_id": [3, 4],
        "hour_of_day": [0, 23],
        "device": [None, "ios"],
        "country": ["US", None],
        "item_category": [None, None],
        "price": [None, 9.5],
        "label": [0, 1],
    }
    store = LocalObjectStore(tmp_path)
    store.put_bytes("x.parquet", to_parquet_bytes(pa.table(rows, TRAINING_EXAMPLES_SCHEMA)).data)
    config = TrainConfig(eval_fraction=0.0, model_inputs=CTR_MODEL_INPUTS)
    data = load_dataset(store, {"x.parquet": CTR_MODEL_INPUTS.examples.table}, config).train
    device, country, category = (
        data.categorical[:, 2],
        data.categorical[:, 3],
        data.categorical[:, 4],
    )
    assert device[0] == 0 and device[1] > 0 and country[1] == 0 and (category == 0).all()
    assert data.numeric[0].tolist() == [0.0, 1.0]
    assert data.numeric[1, 0].item() == pytest.approx(np.log1p(9.5))


def test_sampler_resumes_mid_epoch_with_identical_batches():
    full = BatchSampler(103, 10, seed=5)
    expected = [full.next_indices() for _ in range(25)]  # crosses two epoch boundaries
    assert full.batches_per_epoch == 10
    epoch_rows = torch.cat(expected[:10])
    assert len(set(epoch_rows.tolist())) == 100  # no row twice within an epoch

    head = BatchSampler(103, 10, seed=5)
    for _ in range(13):
        head.next_indices()
    resumed = BatchSampler(103, 10, seed=5)
    resumed.restore(head.position())
    rest = [resumed.next_indices() for _ in range(12)]
    assert all(torch.equal(a, b) for a, b in zip(rest, expected[13:], strict=True))


def test_sampler_shards_each_global_batch_across_ranks():
    ranks = [BatchSampler(50, 4, seed=1, rank=r, world_size=3) for r in range(3)]
    single = BatchSampler(50, 12, seed=1)
    for _ in range(6):
        parts = [r.next_indices() for r in ranks]
        assert torch.equal(torch.cat(parts), single.next_indices())
    with pytest.raises(ValueError, match="global batch"):
        BatchSampler(5, 4, seed=1, world_size=2)


def test_auc_matches_pairwise_definition_with_ties():
    generator = np.random.default_rng(3)
    labels = generator.integers(0, 2, 300)
    scores = np.round(generator.normal(size=300) + labels, 1)  # rounding makes ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert roc_auc(labels, scores) == pytest.approx(pairwise)
    assert roc_auc(np.ones(4), np.arange(4.0)) is None
    assert roc_auc(np.array([0, 1]), np.array([0.1, 0.9])) == 1.0


def test_log_loss_matches_formula():
    labels = np.array([0.0, 1.0, 1.0])
    logits = np.array([-2.0, 0.5, 3.0])
    p = 1 / (1 + np.exp(-logits))
    expected = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    assert log_loss(labels, logits) == pytest.approx(expected)
    assert log_loss(np.array([]), np.array([])) is None


def test_lr_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    config = TrainConfig(total_steps=110, warmup_steps=10, min_lr_ratio=0.1)
    values = [lr_multiplier(step, config) for step in range(110)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(values[9:]))
    assert values[60] == pytest.approx(0.55)
    assert lr_multiplier(110, config) == pytest.approx(0.1)


def test_rng_states_survive_a_weights_only_round_trip():
    rng.seed_everything(123)
    buffer = io.BytesIO()
    torch.save(rng.capture(), buffer)
    expected = (random.random(), np.random.random(), torch.rand(3))
    rng.seed_everything(999)
    rng.restore(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    actual = (random.random(), np.random.random(), torch.rand(3))
    assert actual[:2] == expected[:2] and torch.equal(actual[2], expected[2])


def test_model_learns_a_separable_signal():
    torch.manual_seed(0)
    config = TrainConfig(
        user_buckets=16,
        item_buckets=16,
        hidden_sizes=(16,),
        dropout=0.0,
        model_inputs=CTR_MODEL_INPUTS,
    )
    model = build_model(config)
    optimizer = build_optimizer(model, config)
    categorical = torch.stack([torch.randint(0, n, (256,)) for n in (16, 16, 16, 64, 64, 24)], 1)
    numeric = torch.randn(256, 2)
    labels = (categorical[:, 0] % 2).float()  # clicks depend on the user bucket
    first = loss_fn(model(categorical, numeric), labels).item()
    for _ in range(200):
        optimizer.zero_grad()
        loss = loss_fn(model(categorical, numeric), labels)
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 4
    assert roc_auc(labels.numpy(), model(categorical, numeric).detach().numpy()) > 0.95


def test_cli_refuses_bad_config_and_versions_with_exit_2(inputs, monkeypatch, capsys):
    # In-process: keep pytest's own SIGTERM handling.
    monkeypatch.setattr(cli, "install_sigterm_handler", threading.Event)
    bad_config = trainer_args(inputs, "ckpt/x", {**TINY_CONFIG, "lr": "fast"})
    assert cli.main(bad_config) == cli.EXIT_BAD_INPUT
    bad_versions = trainer_args(inputs, "ckpt/x", TINY_CONFIG)
    flag = bad_versions.index("--input-data-versions-json")
    bad_versions[flag + 1] = '{"features/other.parquet": "abc"}'
    assert cli.main(bad_versions) == cli.EXIT_BAD_INPUT
    errors = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["error"] for e in errors] == ["ConfigError", "ConfigError"]
    assert "lr has the wrong type" in errors[0]["message"]
    assert "missing versions" in errors[1]["message"]
    assert not (inputs.root / "ckpt").exists()
