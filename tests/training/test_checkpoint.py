"""CheckpointManager: publish protocol, corruption fallback, fingerprint refusal, pruning,
background writes."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import threading
from pathlib import Path

import pytest
import torch

from resources.storage.object_store import LocalObjectStore
from training.checkpoint import (
    CheckpointManager,
    CheckpointWriteError,
    FingerprintMismatch,
)

FP = "a" * 64
PREFIX = "checkpoints/run"


def _payloads(step: int) -> dict:
    return {
        "model.pt": {"weight": torch.full((4, 3), float(step)), "bias": torch.arange(3.0)},
        "trainer.pt": {"step": step, "rng": torch.ByteTensor([step % 256] * 8), "lr": 0.1},
    }


def _manager(root: Path, keep_last: int = 3) -> CheckpointManager:
    return CheckpointManager(LocalObjectStore(root), PREFIX, keep_last=keep_last)


def _save_steps(manager: CheckpointManager, *steps: int) -> None:
    for step in steps:
        manager.save(step, _payloads(step), fingerprint=FP, metadata={"step": step})
    manager.wait()


def _step_dir(root: Path, step: int) -> Path:
    return root / PREFIX / f"step-{step:06d}"


def test_save_publishes_manifest_with_hashes_of_every_file(tmp_path):
    manager = _manager(tmp_path)
    _save_steps(manager, 7)
    manifest = json.loads((_step_dir(tmp_path, 7) / "manifest.json").read_text())
    assert manifest["step"] == 7 and manifest["fingerprint"] == FP
    assert set(manifest["files"]) == {"model.pt", "trainer.pt"}
    for name, entry in manifest["files"].items():
        data = (_step_dir(tmp_path, 7) / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    loaded = manager.load_latest(FP)
    assert loaded is not None and loaded.step == 7
    assert torch.equal(loaded.payloads["model.pt"]["weight"], torch.full((4, 3), 7.0))
    assert loaded.payloads["trainer.pt"]["lr"] == 0.1


def _truncate(root: Path) -> None:
    path = _step_dir(root, 3) / "model.pt"
    path.write_bytes(path.read_bytes()[:-20])


def _flip_byte(root: Path) -> None:
    path = _step_dir(root, 3) / "trainer.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _drop_manifest(root: Path) -> None:
    (_step_dir(root, 3) / "manifest.json").unlink()


def _drop_payload(root: Path) -> None:
    (_step_dir(root, 3) / "model.pt").unlink()


def _bad_json(root: Path) -> None:
    (_step_dir(root, 3) / "manifest.json").write_text('{"step": 3, "files": {')


def _manifest_for_other_step(root: Path) -> None:
    manifest = json.loads((_step_dir(root, 2) / "manifest.json").read_text())
    (_step_dir(root, 3) / "manifest.json").write_text(json.dumps(manifest))


def test_rewriting_a_step_found_corrupt_publishes_it_again(tmp_path):
    _save_steps(_manager(tmp_path), 1, 2, 3)
    _flip_byte(tmp_path)
    resumed = _manager(tmp_path)
    assert resumed.load_latest(FP).step == 2
    _save_steps(resumed, 3)  # the resumed run passes step 3 again
    assert resumed.published_steps() == [1, 2, 3]
    assert _manager(tmp_path).load_latest(FP).step == 3


@pytest.mark.parametrize(
    "corrupt",
    [_truncate, _flip_byte, _drop_manifest, _drop_payload, _bad_json, _manifest_for_other_step],
)
def test_corrupt_newest_step_falls_back_to_previous_valid_one(tmp_path, caplog, corrupt):
    _save_steps(_manager(tmp_path), 1, 2, 3)
    corrupt(tmp_path)
    with caplog.at_level(logging.WARNING, logger="training.checkpoint"):
        loaded = _manager(tmp_path).load_latest(FP)
    assert loaded is not None and loaded.step == 2
    assert torch.equal(loaded.payloads["model.pt"]["weight"], torch.full((4, 3), 2.0))
    assert "step-000003" in caplog.text


def test_every_step_corrupt_means_start_from_scratch(tmp_path, caplog):
    _save_steps(_manager(tmp_path), 1, 2)
    for step in (1, 2):
        (_step_dir(tmp_path, step) / "model.pt").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="training.checkpoint"):
        assert _manager(tmp_path).load_latest(FP) is None
    assert "starting from scratch" in caplog.text
    assert _manager(tmp_path / "empty").load_latest(FP) is None


def test_unverified_bytes_never_reach_torch_load(tmp_path, monkeypatch):
    _save_steps(_manager(tmp_path), 1, 2, 3)
    _flip_byte(tmp_path)
    flipped = (_step_dir(tmp_path, 3) / "trainer.pt").read_bytes()
    verified_hashes = {
        entry["sha256"]
        for step in (1, 2, 3)
        for entry in json.loads((_step_dir(tmp_path, step) / "manifest.json").read_text())[
            "files"
        ].values()
    }
    calls = []
    real_load = torch.load

    def spy(f, *args, **kwargs):
        data = f.getvalue() if isinstance(f, io.BytesIO) else None
        calls.append((data, kwargs.get("weights_only")))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    loaded = _manager(tmp_path).load_latest(FP)
    assert loaded is not None and loaded.step == 2
    assert calls, "torch.load was never called"
    for data, weights_only in calls:
        assert weights_only is True
        assert data is not None and data != flipped
        assert hashlib.sha256(data).hexdigest() in verified_hashes


class _Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('pickle code ran')",))


def test_verified_payload_with_code_is_refused_by_weights_only(tmp_path, caplog):
    """A file whose hash matches its manifest can still be hostile (someone with write access
    planted both): weights_only=True refuses it and the loader falls back."""
    _save_steps(_manager(tmp_path), 1, 2)
    evil = pickle.dumps(_Boom(), protocol=2)
    step_dir = _step_dir(tmp_path, 2)
    (step_dir / "model.pt").write_bytes(evil)
    manifest = json.loads((step_dir / "manifest.json").read_text())
    manifest["files"]["model.pt"] = {"sha256": hashlib.sha256(evil).hexdigest(), "size": len(evil)}
    (step_dir / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="training.checkpoint"):
        loaded = _manager(tmp_path).load_latest(FP)
    assert loaded is not None and loaded.step == 1
    assert "does not deserialize" in caplog.text


def test_fingerprint_mismatch_is_refused_with_a_clear_message(tmp_path):
    _save_steps(_manager(tmp_path), 1)
    other = "b" * 64
    with pytest.raises(FingerprintMismatch) as info:
        _manager(tmp_path).load_latest(other)
    message = str(info.value)
    assert FP in message and other in message
    assert "--no-resume" in message and "step-000001/manifest.json" in message


def test_keeps_only_the_latest_k_published_steps(tmp_path):
    manager = _manager(tmp_path, keep_last=2)
    # Leftovers of interrupted writes: payload without manifest, below and above the steps.
    for orphan in (1, 99):
        _step_dir(tmp_path, orphan).mkdir(parents=True)
        (_step_dir(tmp_path, orphan) / "model.pt").write_bytes(b"partial")
    _save_steps(manager, 10, 20, 30, 40)
    assert manager.published_steps() == [30, 40]
    # Every object of every other step is gone (empty local directories are not objects).
    remaining = {key.split("/")[2] for key in LocalObjectStore(tmp_path).list_keys(PREFIX)}
    assert remaining == {"step-000030", "step-000040"}
    with pytest.raises(ValueError, match="keep_last"):
        _manager(tmp_path, keep_last=1)


def test_pruning_drops_steps_of_another_fingerprint_and_broken_ones(tmp_path):
    _save_steps(_manager(tmp_path), 1, 2, 3, 4)  # another run's checkpoints (fingerprint FP)
    (_step_dir(tmp_path, 2) / "manifest.json").write_text("not json")
    takeover = _manager(tmp_path)
    new_fp = "c" * 64
    takeover.save(3, _payloads(3), fingerprint=new_fp)  # a --no-resume run reaching step 3
    takeover.wait()
    assert takeover.published_steps() == [3]
    assert takeover.load_latest(new_fp).step == 3


class _GatedStore(LocalObjectStore):
    """A store whose writes wait for a gate, counting writes in flight."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.gate = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.order: list[str] = []
        self._lock = threading.Lock()

    def put_bytes(self, key, data):
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.gate.wait()
        try:
            return super().put_bytes(key, data)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.order.append(key)


def test_save_snapshots_synchronously_and_writes_in_background(tmp_path):
    store = _GatedStore(tmp_path)
    manager = CheckpointManager(store, PREFIX, keep_last=3)
    weight = torch.zeros(4)
    # Returns although the store is blocked: the write happens on another thread.
    manager.save(1, {"model.pt": {"w": weight}}, fingerprint=FP)
    weight.add_(5.0)  # training goes on mutating the live tensor
    second = threading.Thread(
        target=manager.save, args=(2, {"model.pt": {"w": weight}}), kwargs={"fingerprint": FP}
    )
    second.start()  # must wait for step 1's write: at most one in flight
    store.gate.set()
    second.join()
    manager.close()
    assert store.max_in_flight == 1
    step1_keys = [k for k in store.order if "step-000001" in k]
    assert store.order[: len(step1_keys)] == step1_keys  # step 1 published before step 2 began
    assert step1_keys[-1].endswith("manifest.json")
    first = manager.load_step(1, FP).payloads["model.pt"]["w"]
    assert torch.equal(first, torch.zeros(4))  # the snapshot, not the mutated tensor
    assert torch.equal(manager.load_step(2, FP).payloads["model.pt"]["w"], torch.full((4,), 5.0))


class _FailingStore(LocalObjectStore):
    def put_bytes(self, key, data):
        if key.endswith("trainer.pt"):
            raise OSError("disk full")
        return super().put_bytes(key, data)


def test_failed_background_write_raises_on_wait_and_publishes_nothing(tmp_path):
    manager = CheckpointManager(_FailingStore(tmp_path), PREFIX)
    manager.save(5, _payloads(5), fingerprint=FP)
    with pytest.raises(CheckpointWriteError) as info:
        manager.wait()
    assert isinstance(info.value.__cause__, OSError)
    assert manager.published_steps() == []
    assert manager.load_latest(FP) is None


def test_refuses_state_that_weights_only_could_not_load(tmp_path):
    with pytest.raises(TypeError, match="weights_only"):
        _manager(tmp_path).save(1, {"trainer.pt": {"bad": object()}}, fingerprint=FP)
