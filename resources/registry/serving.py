"""The serving side: resolve an alias, verify the checkpoint, load it.

`load_alias` is the one way to load a registered model: the alias is resolved to a version
record, the checkpoint's manifest must hash to the record's `manifest_sha256` and every file
to the manifest, and only then do the bytes reach `torch.load(weights_only=True)`. The alias
is read again after loading; if it moved meanwhile, the load starts over, so the version
returned is the one the alias named when loading finished ("the tag says X, serving runs Y"
cannot happen silently).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from contract.model_inputs import MODEL_INPUTS
from resources.registry.registry import (
    PRODUCTION,
    AliasNotSet,
    ModelRegistry,
    ModelVersion,
    RegistryError,
)
from training.checkpoint import InitCheckpointError, load_step_key
from training.config import TrainConfig
from training.loop import MODEL_FILE
from training.model import build_model

MAX_LOAD_ATTEMPTS = 3


class ServingLoadError(RegistryError):
    """The alias's checkpoint is missing, altered or does not fit its recorded config."""


@dataclass(frozen=True)
class ServedModel:
    alias: str
    version: ModelVersion
    alias_sequence: int  # the alias move this load corresponds to
    model: torch.nn.Module


def load_version(registry: ModelRegistry, record: ModelVersion) -> torch.nn.Module:
    """Verify and load one version's weights into a model built from its recorded config."""
    try:
        loaded = load_step_key(registry.store, record.checkpoint_key, record.manifest_sha256)
    except InitCheckpointError as err:
        raise ServingLoadError(
            f"model {registry.model!r} version {record.version!r}: {err}. The registered "
            "checkpoint is not the one that was approved; roll the alias back to a version whose "
            "checkpoint verifies (rollback job), then investigate the storage."
        ) from err
    # A record written before configs carried the model-input declaration was trained on the
    # example's inputs, which the contract declares.
    model = build_model(
        TrainConfig.from_dict({"model_inputs": MODEL_INPUTS.to_dict(), **record.config})
    )
    model.load_state_dict(loaded.payloads[MODEL_FILE])
    model.eval()
    return model


def load_alias(registry: ModelRegistry, alias: str = PRODUCTION) -> ServedModel:
    """The model the alias names, verified and loaded (see the module docstring)."""
    for _ in range(MAX_LOAD_ATTEMPTS):
        before = registry.read_alias(alias)
        if before is None:
            raise AliasNotSet(f"model {registry.model!r} alias {alias!r} names no version yet")
        record = registry.get_version(before.version)
        model = load_version(registry, record)
        after = registry.read_alias(alias)
        if after is not None and after.move == before.move:
            return ServedModel(alias, record, before.move.sequence, model)
    raise ServingLoadError(
        f"model {registry.model!r} alias {alias!r} moved during each of {MAX_LOAD_ATTEMPTS} "
        "loads; retry once promotions settle"
    )
