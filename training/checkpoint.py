"""Checkpoints on an ObjectStore that survive kills at any instant.

Layout under a prefix P (one prefix per training fingerprint; one writer per prefix):

    P/step-000120/model.pt        payload files (torch.save of plain state dicts)
    P/step-000120/trainer.pt
    P/step-000120/manifest.json   written LAST: step, fingerprint, sha256 and size of each file

A step exists only if its manifest exists and every file matches it: a kill mid-write leaves
payloads without a manifest, which readers ignore. Bytes reach `torch.load` only after their
sha256 matched the manifest, and always with `weights_only=True`, so a corrupted or planted
object can neither be half-loaded nor execute code. Anything unusable makes the loader warn
and fall back to the previous step; only a checkpoint from a different run (fingerprint) is
an error, because silently resuming someone else's training is worse than stopping.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from resources.storage.object_store import (
    InvalidObjectKey,
    ObjectNotFound,
    ObjectStore,
    validate_object_key,
)

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "training-checkpoint/v1"
_STEP_DIR = re.compile(r"^step-(\d+)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Leaf types torch.load(weights_only=True) accepts; anything else is refused at save time,
# where the bug is cheap, instead of at resume time, where the checkpoint would be useless.
_PLAIN_LEAVES = (bool, int, float, str, type(None))


class FingerprintMismatch(RuntimeError):
    """The checkpoint under this prefix belongs to a different config, input or code."""


class CheckpointWriteError(RuntimeError):
    """The background write of a checkpoint failed; the step was not published."""


class CorruptCheckpoint(Exception):
    """A step directory that cannot be used (the reason is the message)."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    step: int
    key: str  # the step directory key, e.g. "<prefix>/step-000120"
    manifest: dict[str, Any]
    payloads: dict[str, Any]  # file name -> deserialized object


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


def _to_cpu(value: Any, path: str = "state") -> Any:
    """A deep copy with every tensor cloned to CPU, so training may mutate the originals while
    the background thread serializes the copy."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Mapping):
        return type(value)((k, _to_cpu(v, f"{path}[{k!r}]")) for k, v in value.items())
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v, f"{path}[{i}]") for i, v in enumerate(value))
    if isinstance(value, _PLAIN_LEAVES):
        return value
    raise TypeError(
        f"{path} is a {type(value).__name__}; checkpoints hold only tensors, numbers, strings, "
        "None and dicts/lists/tuples of them (so they load with weights_only=True)"
    )


class CheckpointManager:
    def __init__(self, store: ObjectStore, prefix: str, keep_last: int = 3):
        if keep_last < 2:
            raise ValueError("keep_last must be >= 2 so a corrupt newest step has a fallback")
        self.store = store
        self.prefix = validate_object_key(prefix.strip("/"))
        self.keep_last = keep_last
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        # Steps found unusable while loading: never counted among the kept k, pruned later.
        self._invalid_steps: set[int] = set()

    # Keys -------------------------------------------------------------------------------

    def step_key(self, step: int) -> str:
        return f"{self.prefix}/{step_dir_name(step)}"

    def manifest_key(self, step: int) -> str:
        return f"{self.step_key(step)}/{MANIFEST_NAME}"

    def _objects_by_step(self) -> dict[int, list[str]]:
        by_step: dict[int, list[str]] = {}
        for key in self.store.list_keys(self.prefix):
            rest = key[len(self.prefix) + 1 :] if key.startswith(self.prefix + "/") else ""
            parts = rest.split("/")
            match = _STEP_DIR.match(parts[0]) if len(parts) == 2 else None
            if match:
                by_step.setdefault(int(match.group(1)), []).append(key)
        return by_step

    def published_steps(self) -> list[int]:
        """Steps with a manifest object, ascending (not yet verified)."""
        return sorted(
            step
            for step, keys in self._objects_by_step().items()
            if self.manifest_key(step) in keys
        )

    # Saving -----------------------------------------------------------------------------

    def save(
        self,
        step: int,
        payloads: Mapping[str, Any],
        *,
        fingerprint: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Snapshot `payloads` to CPU now, write them in the background; returns the step key.

        Waits first for the previous write: at most one is in flight, so checkpoints publish in
        step order and at most one CPU snapshot of the state exists at a time.
        """
        self.wait()
        for name in payloads:
            if name == MANIFEST_NAME or "/" in name:
                raise ValueError(f"Payload name {name!r} must be a plain file name")
            validate_object_key(name)
        snapshot = {name: _to_cpu(obj, name) for name, obj in payloads.items()}
        manifest_metadata = json.loads(json.dumps(dict(metadata or {}), allow_nan=False))
        self._thread = threading.Thread(
            target=self._write,
            args=(step, snapshot, fingerprint, manifest_metadata),
            name=f"checkpoint-{step_dir_name(step)}",
        )
        self._thread.start()
        return self.step_key(step)

    def _write(
        self, step: int, snapshot: dict[str, Any], fingerprint: str, metadata: dict[str, Any]
    ) -> None:
        try:
            # Rewriting a step (a resumed run passing it again): unpublish it first, so no
            # reader ever pairs the old manifest with new payload bytes.
            self.store.delete(self.manifest_key(step))
            files = {}
            for name, obj in snapshot.items():
                buffer = io.BytesIO()
                torch.save(obj, buffer)
                data = buffer.getvalue()
                self.store.put_bytes(f"{self.step_key(step)}/{name}", data)
                files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            manifest = {
                "format": MANIFEST_FORMAT,
                "step": step,
                "fingerprint": fingerprint,
                "files": files,
                "metadata": metadata,
            }
            body = json.dumps(manifest, indent=2, sort_keys=True).encode()
            self.store.put_bytes(self.manifest_key(step), body)
            self._invalid_steps.discard(step)  # found broken at load, now rewritten whole
            logger.info("Checkpoint %s published", self.store.uri(self.manifest_key(step)))
        except BaseException as err:  # re-raised in the training thread by wait()
            self._error = err
            return
        self._prune(step, fingerprint)

    def _prune(self, newest: int, fingerprint: str) -> None:
        """Keep the newest `keep_last` steps up to `newest` that this run could resume from;
        delete every other step: older ones, steps above `newest` (leftovers of the attempt
        this run resumed from), broken ones, and steps of another fingerprint (a --no-resume
        run taking over the prefix), which could otherwise become a fallback it must refuse."""
        try:
            by_step = self._objects_by_step()
            keep: set[int] = set()
            for step in sorted(by_step, reverse=True):
                if len(keep) == self.keep_last:
                    break
                if step > newest or step in self._invalid_steps:
                    continue
                if self.manifest_key(step) in by_step[step] and self._same_run(step, fingerprint):
                    keep.add(step)
            for step, keys in sorted(by_step.items()):
                if step in keep:
                    continue
                # Manifest first: the step stops existing before its payloads disappear.
                manifest = self.manifest_key(step)
                for key in sorted(keys, key=lambda k: k != manifest):
                    self.store.delete(key)
                self._invalid_steps.discard(step)
        except Exception as err:  # a failed clean-up must not fail training; the next one retries
            logger.warning("Pruning old checkpoints under %s failed: %s", self.prefix, err)

    def _same_run(self, step: int, fingerprint: str) -> bool:
        try:
            return self._read_manifest(step)["fingerprint"] == fingerprint
        except CorruptCheckpoint:
            return False

    def wait(self) -> None:
        """Block until the in-flight write (if any) is published; raise if it failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise CheckpointWriteError(f"Writing a checkpoint under {self.prefix} failed") from err

    def close(self) -> None:
        self.wait()

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Loading ----------------------------------------------------------------------------

    def load_latest(self, fingerprint: str | None) -> LoadedCheckpoint | None:
        """The newest step that verifies, or None. Corrupt steps are skipped with a warning.

        `fingerprint=None` skips the fingerprint check (inspection tools only).
        """
        by_step = self._objects_by_step()
        for step in sorted(by_step, reverse=True):
            if self.manifest_key(step) not in by_step[step]:
                logger.warning(
                    "Ignoring %s: it has no manifest (a write was interrupted)", self.step_key(step)
                )
                self._invalid_steps.add(step)
                continue
            try:
                return self.load_step(step, fingerprint)
            except CorruptCheckpoint as err:
                self._invalid_steps.add(step)
                logger.warning(
                    "Checkpoint %s is unusable (%s); falling back to the previous step",
                    self.step_key(step),
                    err,
                )
        if by_step:
            logger.warning("No valid checkpoint under %s; starting from scratch", self.prefix)
        return None

    def _read_manifest(self, step: int) -> dict[str, Any]:
        try:
            manifest = json.loads(self.store.get_bytes(self.manifest_key(step)))
        except ObjectNotFound as err:
            raise CorruptCheckpoint("manifest missing") from err
        except (ValueError, UnicodeDecodeError) as err:
            raise CorruptCheckpoint(f"manifest is not valid JSON: {err}") from err
        problems = []
        if not isinstance(manifest, dict):
            raise CorruptCheckpoint("manifest is not a JSON object")
        if manifest.get("format") != MANIFEST_FORMAT:
            problems.append(f"format {manifest.get('format')!r} != {MANIFEST_FORMAT!r}")
        if manifest.get("step") != step:
            problems.append(f"manifest step {manifest.get('step')!r} != directory step {step}")
        if not isinstance(manifest.get("fingerprint"), str):
            problems.append("no fingerprint")
        files = manifest.get("files")
        if not isinstance(files, dict) or not files:
            problems.append("no files listed")
        else:
            for name, entry in files.items():
                ok = (
                    isinstance(entry, dict)
                    and isinstance(entry.get("sha256"), str)
                    and _SHA256.match(entry["sha256"])
                    and isinstance(entry.get("size"), int)
                    and "/" not in name
                    and name != MANIFEST_NAME
                )
                if not ok:
                    problems.append(f"bad file entry {name!r}")
        if problems:
            raise CorruptCheckpoint("; ".join(problems))
        return manifest

    def load_step(self, step: int, fingerprint: str | None) -> LoadedCheckpoint:
        """Verify every file of `step` against its manifest, then deserialize.

        Raises CorruptCheckpoint (any integrity problem) or FingerprintMismatch.
        """
        manifest = self._read_manifest(step)
        if fingerprint is not None and manifest["fingerprint"] != fingerprint:
            raise FingerprintMismatch(
                f"Checkpoint {self.store.uri(self.manifest_key(step))} was written by a run with "
                f"fingerprint {manifest['fingerprint']}, but this run's fingerprint is "
                f"{fingerprint}: the config, input data versions or code version differ. "
                "Refusing to resume from it. Use a checkpoint prefix derived from this run's "
                "fingerprint, or start fresh with --no-resume (which replaces these checkpoints)."
            )
        verified: dict[str, bytes] = {}
        for name, entry in sorted(manifest["files"].items()):
            key = f"{self.step_key(step)}/{name}"
            try:
                data = self.store.get_bytes(key)
            except ObjectNotFound as err:
                raise CorruptCheckpoint(f"{name} listed in the manifest is missing") from err
            except InvalidObjectKey as err:
                raise CorruptCheckpoint(f"manifest names an invalid file {name!r}") from err
            if len(data) != entry["size"]:
                raise CorruptCheckpoint(
                    f"{name} has {len(data)} bytes, manifest says {entry['size']}"
                )
            digest = hashlib.sha256(data).hexdigest()
            if digest != entry["sha256"]:
                raise CorruptCheckpoint(f"{name} sha256 {digest} != manifest {entry['sha256']}")
            verified[name] = data
        payloads = {}
        for name, data in verified.items():
            try:
                payloads[name] = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            except Exception as err:  # verified bytes that still do not load: unusable step
                raise CorruptCheckpoint(f"{name} does not deserialize: {err}") from err
        return LoadedCheckpoint(
            step=step, key=self.step_key(step), manifest=manifest, payloads=payloads
        )


class InitCheckpointError(RuntimeError):
    """The warm-start checkpoint is missing, corrupt, or not the one the caller named."""


def load_step_key(store: ObjectStore, step_key: str, manifest_sha256: str) -> LoadedCheckpoint:
    """Load another run's published step (a warm start) by its key, verified twice: its
    manifest must hash to `manifest_sha256` (the step the caller approved, not a later one
    written under the same key) and every file must match the manifest."""
    prefix, _, step_dir = step_key.strip("/").rpartition("/")
    match = _STEP_DIR.match(step_dir)
    if not prefix or not match:
        raise InitCheckpointError(f"{step_key!r} is not a checkpoint step key (…/step-NNNNNN)")
    manager = CheckpointManager(store, prefix)
    step = int(match.group(1))
    try:
        manifest_bytes = store.get_bytes(manager.manifest_key(step))
    except ObjectNotFound as err:
        raise InitCheckpointError(f"warm-start checkpoint {step_key} has no manifest") from err
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    if digest != manifest_sha256:
        raise InitCheckpointError(
            f"warm-start checkpoint {step_key}: manifest sha256 {digest[:12]} is not the "
            f"approved {manifest_sha256[:12]}"
        )
    try:
        return manager.load_step(step, fingerprint=None)
    except CorruptCheckpoint as err:
        raise InitCheckpointError(f"warm-start checkpoint {step_key} is unusable: {err}") from err
