"""Serving loads exactly the version the alias names, verified: a checkpoint altered after
registration is refused with an error naming the version, never loaded."""

import hashlib

import pytest
import torch

from contract.model_inputs import MODEL_INPUTS
from resources.registry.registry import PRODUCTION, ModelRegistry, promote
from resources.registry.serving import ServingLoadError, load_alias
from resources.storage.object_store import LocalObjectStore
from tests.support.registry import record
from training.checkpoint import MANIFEST_NAME, CheckpointManager
from training.config import TrainConfig
from training.loop import MODEL_FILE
from training.model import build_model

CONFIG = TrainConfig(model_inputs=MODEL_INPUTS)


def _checkpoint(store, name: str, seed: int) -> tuple[str, str, dict]:
    config = CONFIG.to_dict()
    torch.manual_seed(seed)
    model = build_model(TrainConfig.from_dict(config))
    with CheckpointManager(store, f"checkpoints/model_checkpoint/2025-01-10/{name}") as manager:
        step_key = manager.save(10, {MODEL_FILE: model.state_dict()}, fingerprint=name)
    manifest = store.get_bytes(f"{step_key}/{MANIFEST_NAME}")
    return step_key, hashlib.sha256(manifest).hexdigest(), model.state_dict()


def _register(registry, version: str, seed: int) -> dict:
    step_key, manifest_sha256, weights = _checkpoint(registry.store, version, seed)
    registry.register(
        record(
            version,
            checkpoint_key=step_key,
            manifest_sha256=manifest_sha256,
            # v1's record predates configs carrying the declaration: served as the contract's.
            config=(TrainConfig() if version == "v1" else CONFIG).to_dict(),
        )
    )
    return weights


def test_serving_loads_the_alias_version_and_follows_a_rollback(tmp_path):
    registry = ModelRegistry(LocalObjectStore(tmp_path), "ctr")
    weights_v1 = _register(registry, "v1", seed=1)
    weights_v2 = _register(registry, "v2", seed=2)
    promote(registry, "v1", None, "first", "run-1")
    promote(registry, "v2", "v1", "second", "run-2")

    served = load_alias(registry, PRODUCTION)
    assert served.version.version == "v2"
    assert served.alias_sequence == 2
    for name, tensor in served.model.state_dict().items():
        assert torch.equal(tensor, weights_v2[name]), name

    registry.move_alias(PRODUCTION, "v1", expected="v2", why="rollback", run_id="rb")
    served = load_alias(registry, PRODUCTION)
    assert served.version.version == "v1"
    assert all(torch.equal(t, weights_v1[n]) for n, t in served.model.state_dict().items())


def test_an_altered_checkpoint_is_refused_naming_the_version(tmp_path):
    registry = ModelRegistry(LocalObjectStore(tmp_path), "ctr")
    _register(registry, "v1", seed=1)
    promote(registry, "v1", None, "first", "run-1")
    key = f"{registry.get_version('v1').checkpoint_key}/{MODEL_FILE}"
    data = bytearray(registry.store.get_bytes(key))
    data[-10] ^= 0xFF
    registry.store.put_bytes(key, bytes(data))
    with pytest.raises(ServingLoadError, match=r"version 'v1'.*roll the alias back"):
        load_alias(registry, PRODUCTION)


def test_a_rewritten_manifest_is_not_the_approved_one(tmp_path):
    registry = ModelRegistry(LocalObjectStore(tmp_path), "ctr")
    _register(registry, "v1", seed=1)
    promote(registry, "v1", None, "first", "run-1")
    # Another save under the same step key (same prefix, same step) after registration.
    _checkpoint(registry.store, "v1", seed=3)
    with pytest.raises(ServingLoadError, match="is not the approved"):
        load_alias(registry, PRODUCTION)
