"""Reproduce a registered model from its version record alone.

The seeds' postmortems "cannot exactly reproduce past runs because the underlying training data
changed". Here a version record names everything the weights came from: the input partitions
by object key and content sha256 (`dataset.input_data_versions`: content-addressed keys, so a
re-delivery never overwrites them), the trainer config, the code version (a hash of
`training/`), the warm-start parent (`parent_version`, whose own record names its checkpoint
and manifest sha256) and the fingerprint of all of these. This module turns a record into:

1. a check that the record is self-consistent: those parts give its fingerprint again;
2. a copy of exactly those bytes (each verified by its hash) into a scratch object store;
3. the trainer's arguments to re-run it there, to the same fingerprint (on CPU, to weights
   equal to the registered ones).

    python -m resources.registry.reproduce --store-root .local/object-store \\
        --version 2026-11-05-0123456789ab --to /tmp/repro [--run]

Dagster-free (the object store and the pure-torch trainer only); torch is imported by `--run`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from resources.registry.registry import DEFAULT_MODEL, ModelRegistry, UnknownVersion
from resources.storage.object_store import LocalObjectStore, ObjectNotFound, ObjectStore

MANIFEST_NAME = "manifest.json"  # training/checkpoint.py's, without importing torch


class NotReproducible(RuntimeError):
    """The record, its inputs or its parent cannot give back the registered model."""


@dataclass(frozen=True)
class Reproduction:
    """Everything a re-run needs, read from one version record (and its parent's)."""

    version: str
    inputs: dict[str, str]  # object key -> content sha256
    tables: dict[str, str]  # object key -> the declared table it is a partition of
    config: dict
    code_version: str
    init_from: dict[str, str] | None  # the parent's step key and manifest sha256
    fingerprint: str
    checkpoint_key: str  # the registered weights, to compare the re-run with
    manifest_sha256: str


def reproduction(registry: ModelRegistry, version: str) -> Reproduction:
    """Read `version`'s record and check that its parts give its fingerprint."""
    # training.config is pure Python (no torch): the same fingerprint the trainer computes.
    from training.config import TrainConfig, fingerprint

    record = registry.get_version(version)
    init_from = None
    if record.parent_version:
        try:
            parent = registry.get_version(record.parent_version)
        except UnknownVersion as err:
            raise NotReproducible(
                f"{version} warm-started from {record.parent_version}, which was never "
                "registered: its checkpoint is not named by any version record"
            ) from err
        init_from = {"step_key": parent.checkpoint_key, "manifest_sha256": parent.manifest_sha256}
    inputs = dict(record.dataset.get("input_data_versions") or {})
    if not inputs:
        raise NotReproducible(f"{version}'s record names no input partitions")
    again = fingerprint(
        TrainConfig.from_dict(record.config), inputs, record.code_version, init_from
    )
    if again != record.fingerprint:
        raise NotReproducible(
            f"{version}: its config, inputs, code version and parent give fingerprint "
            f"{again[:16]}, but it records {record.fingerprint[:16]}; the record is not "
            "self-consistent"
        )
    # The training-set manifest's entries name each key's table.
    tables = {
        entry["object_key"]: entry["asset"]
        for entry in record.dataset.get("inputs") or []
        if entry.get("object_key") in inputs
    }
    unnamed = sorted(set(inputs) - set(tables))
    if unnamed:
        raise NotReproducible(
            f"{version}'s record does not say which table its inputs {unnamed} belong to (its "
            "dataset entries lack them)"
        )
    return Reproduction(
        version=version,
        inputs=inputs,
        tables=tables,
        config=record.config,
        code_version=record.code_version,
        init_from=init_from,
        fingerprint=record.fingerprint,
        checkpoint_key=record.checkpoint_key,
        manifest_sha256=record.manifest_sha256,
    )


def _verified(store: ObjectStore, key: str, sha256: str, what: str) -> bytes:
    try:
        data = store.get_bytes(key)
    except ObjectNotFound as err:
        raise NotReproducible(
            f"{what} {store.uri(key)} is gone (retention, or a deleted day): restore that "
            "object from the bucket's versioning or a backup; nothing else has these bytes"
        ) from err
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise NotReproducible(
            f"{what} {store.uri(key)} hashes to {digest[:12]}, the model was trained on "
            f"{sha256[:12]}: these are not the bytes it saw"
        )
    return data


def fetch(source: ObjectStore, repro: Reproduction, into: ObjectStore) -> list[str]:
    """Copy the exact inputs, and the parent's checkpoint step, from `source` into `into`
    under the same keys, each verified by its hash first. Returns the keys copied."""
    copied = []
    for key, sha256 in sorted(repro.inputs.items()):
        into.put_bytes(key, _verified(source, key, sha256, "input partition"))
        copied.append(key)
    if repro.init_from:
        step_key = repro.init_from["step_key"]
        manifest_key = f"{step_key}/{MANIFEST_NAME}"
        manifest_bytes = _verified(
            source, manifest_key, repro.init_from["manifest_sha256"], "parent checkpoint manifest"
        )
        for name, entry in sorted(json.loads(manifest_bytes)["files"].items()):
            key = f"{step_key}/{name}"
            into.put_bytes(key, _verified(source, key, entry["sha256"], "parent checkpoint file"))
            copied.append(key)
        # The manifest last, as the checkpoint manager writes it: a step without one is absent.
        into.put_bytes(manifest_key, manifest_bytes)
        copied.append(manifest_key)
    return copied


def reproduction_prefix(repro: Reproduction) -> str:
    return f"reproductions/{repro.version}/{repro.fingerprint[:16]}"


def trainer_args(repro: Reproduction, store_args: list[str], prefix: str) -> list[str]:
    """`python -m training` arguments that re-run the record's training under `prefix`."""
    return [
        *store_args,
        *(
            arg
            for key in sorted(repro.inputs)
            for arg in ("--input-key", f"{repro.tables[key]}={key}")
        ),
        "--checkpoint-prefix", prefix,
        "--config-json", json.dumps(repro.config),
        "--input-data-versions-json", json.dumps(repro.inputs),
        "--code-version", repro.code_version,
        "--init-from-json", json.dumps(repro.init_from or {}),
        "--no-resume",
        "--device", "cpu",
    ]  # fmt: skip


def require_code_version(repro: Reproduction, current: str) -> None:
    """The trainer takes the code version as given: refuse to run other code under it."""
    if current != repro.code_version:
        raise NotReproducible(
            f"{repro.version} was trained by code version {repro.code_version}; this checkout's "
            f"training/ hashes to {current}. Check out the commit it was trained from (its "
            "image digest is on the version record) and run this again."
        )


def _weights_equal(source: ObjectStore, repro: Reproduction, scratch: ObjectStore, prefix: str):
    import torch

    from training.checkpoint import CheckpointManager, load_step_key

    registered = load_step_key(source, repro.checkpoint_key, repro.manifest_sha256)
    rerun = CheckpointManager(scratch, prefix).load_latest(repro.fingerprint)
    if rerun is None:
        raise NotReproducible(f"the re-run left no checkpoint under {prefix}")
    want, got = registered.payloads["model.pt"], rerun.payloads["model.pt"]
    return want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def main(argv: list[str] | None = None) -> int:
    from training.store_args import add_store_arguments, build_store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_store_arguments(parser)
    parser.add_argument("--version", required=True, help="the registry version to reproduce")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="registry model name")
    parser.add_argument("--to", required=True, type=Path, help="scratch store directory")
    parser.add_argument("--run", action="store_true", help="train, then compare the weights")
    args = parser.parse_args(argv)
    source = build_store(args)
    repro = reproduction(ModelRegistry(source, args.model), args.version)  # type: ignore[arg-type]
    scratch = LocalObjectStore(args.to)
    copied = fetch(source, repro, scratch)
    prefix = reproduction_prefix(repro)
    command = [sys.executable, "-m", "training",
               *trainer_args(repro, ["--store-root", str(args.to)], prefix)]  # fmt: skip
    print(f"{repro.version}: fingerprint {repro.fingerprint[:16]}, {len(copied)} objects "
          f"verified and copied to {args.to}")  # fmt: skip
    print("train it with: " + " ".join(command))
    if not args.run:
        return 0
    # The code that trains must be the code the record names (the trainer cannot tell).
    from assets.model.model_checkpoint import training_code_version

    require_code_version(repro, training_code_version())
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    same = _weights_equal(source, repro, scratch, prefix)
    print(f"weights {'equal' if same else 'DIFFER from'} the registered {repro.checkpoint_key}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
