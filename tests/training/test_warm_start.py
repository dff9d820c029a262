"""Warm start: a day's model starts from another run's verified checkpoint, the fingerprint
pins which one, and a checkpoint that is not the approved one is refused."""

from __future__ import annotations

import hashlib

import pytest
import torch

from resources.storage.object_store import LocalObjectStore
from tests.support.trainer_process import CODE_VERSION, INPUT_TABLES, TINY_CONFIG
from training.checkpoint import InitCheckpointError, load_step_key
from training.config import TrainConfig
from training.loop import MODEL_FILE, train

CONFIG = TrainConfig.from_dict({**TINY_CONFIG, "total_steps": 50})


def _train(store, inputs, prefix, config=CONFIG, init_from=None):
    return train(
        store,
        input_tables=INPUT_TABLES,
        checkpoint_prefix=prefix,
        config=config,
        input_data_versions=inputs.versions,
        code_version=CODE_VERSION,
        device="cpu",
        init_from=init_from,
    )


def _init_from(store, summary) -> dict[str, str]:
    manifest = store.get_bytes(f"{summary['checkpoint_key']}/manifest.json")
    return {
        "step_key": summary["checkpoint_key"],
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
    }


def _weights(store, step_key):
    manifest = store.get_bytes(f"{step_key}/manifest.json")
    loaded = load_step_key(store, step_key, hashlib.sha256(manifest).hexdigest())
    return loaded.payloads[MODEL_FILE]


def test_warm_start_begins_from_the_parent_and_is_part_of_the_fingerprint(inputs):
    store = LocalObjectStore(inputs.root)
    parent = _train(store, inputs, "ckpt/parent").summary
    init_from = _init_from(store, parent)
    cold = _train(store, inputs, "ckpt/cold").summary
    # lr 0: the optimizer cannot move the weights, so the child ends where it started.
    frozen = TrainConfig.from_dict({**CONFIG.to_dict(), "lr": 0.0})
    child = _train(store, inputs, "ckpt/child", config=frozen, init_from=init_from).summary
    frozen_cold = _train(store, inputs, "ckpt/frozen-cold", config=frozen).summary

    assert child["init_from"] == init_from and cold["init_from"] is None
    assert child["fingerprint"] != frozen_cold["fingerprint"]
    parent_weights = _weights(store, parent["checkpoint_key"])
    child_weights = _weights(store, child["checkpoint_key"])
    cold_weights = _weights(store, frozen_cold["checkpoint_key"])
    assert all(torch.equal(parent_weights[k], child_weights[k]) for k in parent_weights)
    assert not torch.equal(
        parent_weights["user_factors.weight"], cold_weights["user_factors.weight"]
    )
    # Starting from the parent's weights, the child evaluates like the parent.
    assert child["metrics"]["eval_auc"] == pytest.approx(parent["metrics"]["eval_auc"])


def test_a_warm_start_that_is_not_the_approved_checkpoint_is_refused(inputs):
    store = LocalObjectStore(inputs.root)
    parent = _train(store, inputs, "ckpt/parent").summary
    init_from = {**_init_from(store, parent), "manifest_sha256": "0" * 64}
    with pytest.raises(InitCheckpointError, match="is not the approved"):
        _train(store, inputs, "ckpt/child", init_from=init_from)
    with pytest.raises(InitCheckpointError, match="not a checkpoint step key"):
        _train(store, inputs, "ckpt/child", init_from={**init_from, "step_key": "ckpt/parent"})
    assert not store.exists("ckpt/child/step-000050/manifest.json")


def test_a_warm_start_of_another_shape_is_an_input_error(inputs):
    from training.data import InputDataError

    store = LocalObjectStore(inputs.root)
    parent = _train(store, inputs, "ckpt/parent").summary
    wider = TrainConfig.from_dict({**CONFIG.to_dict(), "embedding_dim": 6})
    with pytest.raises(InputDataError, match="does not fit this model"):
        _train(store, inputs, "ckpt/child", config=wider, init_from=_init_from(store, parent))
