"""The training length follows the data: with `epochs`, a run makes as many full passes over
its training rows (capped by total_steps), the LR schedule decays over that length, and the
fingerprint tells the lengths apart."""

from __future__ import annotations

import pytest

from assets.model.model_checkpoint import ModelTrainingConfig
from contract.model_inputs import CTR_MODEL_INPUTS
from resources.storage.object_store import LocalObjectStore
from tests.support.trainer_process import CODE_VERSION, INPUT_TABLES, TINY_CONFIG
from training.config import ConfigError, TrainConfig, fingerprint
from training.data import load_dataset
from training.loop import train
from training.optim import lr_multiplier


def test_steps_follow_epochs_up_to_the_cap():
    fixed = TrainConfig(total_steps=300)
    assert fixed.steps_for(24) == fixed.steps_for(1000) == 300
    passes = TrainConfig(total_steps=1000, epochs=16)
    assert passes.steps_for(24) == 384  # the example's window: 24 full batches a pass
    assert passes.steps_for(5) == 80
    assert passes.steps_for(100) == 1000  # the cap
    assert TrainConfig(total_steps=1000, epochs=0.5).steps_for(7) == 4  # ceil(3.5)
    with pytest.raises(ConfigError, match="epochs must be a finite number >= 0"):
        TrainConfig(epochs=-1)


def test_the_schedule_decays_over_the_runs_length():
    config = TrainConfig(total_steps=10_000, warmup_steps=100, epochs=2, min_lr_ratio=0.1)
    schedule = config.schedule_for(config.steps_for(30))  # 60 steps: warmup clamped to them
    assert schedule.total_steps == 60 and schedule.warmup_steps == 60
    assert lr_multiplier(59, schedule) == pytest.approx(1.0)
    longer = TrainConfig(total_steps=10_000, warmup_steps=10, epochs=2).schedule_for(60)
    assert lr_multiplier(59, longer) == pytest.approx(0.1, abs=1e-3)  # decayed to the floor


def test_epochs_are_part_of_the_fingerprint():
    versions = {"k": "v"}
    one, two = TrainConfig(epochs=1), TrainConfig(epochs=2)
    assert fingerprint(one, versions, "c") != fingerprint(two, versions, "c")


def test_the_assets_config_follows_the_data_unless_given_a_step_count():
    default = ModelTrainingConfig().train_config(CTR_MODEL_INPUTS)
    assert (default.epochs, default.total_steps) == (16.0, 20_000)
    fixed = ModelTrainingConfig(total_steps=150).train_config(CTR_MODEL_INPUTS)
    assert (fixed.epochs, fixed.total_steps) == (0.0, 150)
    passes = ModelTrainingConfig(epochs=3, max_steps=500).train_config(CTR_MODEL_INPUTS)
    assert (passes.epochs, passes.total_steps) == (3.0, 500)


def _train(store, inputs, prefix, **fields):
    config = TrainConfig.from_dict({**TINY_CONFIG, "checkpoint_every_steps": 1000, **fields})
    return train(
        store,
        input_tables=INPUT_TABLES,
        checkpoint_prefix=prefix,
        config=config,
        input_data_versions=inputs.versions,
        code_version=CODE_VERSION,
        device="cpu",
    ).summary


def test_epochs_set_the_step_count_from_the_windows_training_rows(inputs):
    store = LocalObjectStore(inputs.root)
    train_rows = len(load_dataset(store, INPUT_TABLES, TrainConfig.from_dict(TINY_CONFIG)).train)
    per_pass = train_rows // TINY_CONFIG["batch_size"]
    assert per_pass > 10  # enough batches that one and two passes differ visibly

    one = _train(store, inputs, "ckpt/one", epochs=1, total_steps=10_000)
    two = _train(store, inputs, "ckpt/two", epochs=2, total_steps=10_000)
    capped = _train(store, inputs, "ckpt/capped", epochs=2, total_steps=per_pass)
    fixed = _train(store, inputs, "ckpt/fixed", total_steps=7, warmup_steps=0)

    assert (one["steps"], one["total_steps"], one["batches_per_epoch"]) == (
        per_pass,
        per_pass,
        per_pass,
    )
    assert two["steps"] == 2 * per_pass
    assert capped["steps"] == per_pass
    assert fixed["steps"] == 7 and fixed["epochs"] == 0.0
    assert two["checkpoint_key"].endswith(f"step-{2 * per_pass:06d}")
    assert len({one["fingerprint"], two["fingerprint"], capped["fingerprint"]}) == 3
