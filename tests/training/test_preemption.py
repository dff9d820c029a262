"""SIGTERM (a preemption notice) makes the trainer checkpoint at the next step boundary and
exit 143; the next run resumes from exactly that step. A foreign checkpoint is refused."""

from __future__ import annotations

import json
import signal

import pytest
import torch

from resources.storage.object_store import LocalObjectStore
from tests.support.trainer_process import TINY_CONFIG, trainer_args
from training.checkpoint import CheckpointManager

# Starts real processes (trainer, daemon/webserver, make): `make test-fast` skips it.
pytestmark = pytest.mark.slow

GRACE_PERIOD_S = 30
CONFIG = {
    **TINY_CONFIG,
    "total_steps": 150,
    # No interval or time-based saves: the only checkpoint can come from the SIGTERM path.
    "checkpoint_every_steps": 1_000_000,
    "checkpoint_every_seconds": 1e9,
}


def test_sigterm_checkpoints_and_exits_nonzero_then_next_run_resumes(inputs, start_trainer):
    trainer = start_trainer(trainer_args(inputs, "ckpt/preempted", CONFIG))
    assert trainer.read_until(lambda e: e["event"] == "progress" and e["step"] >= 20)
    trainer.proc.send_signal(signal.SIGTERM)
    # 30 s is Kubernetes' default terminationGracePeriodSeconds: past it the pod gets SIGKILL.
    assert trainer.finish(timeout=GRACE_PERIOD_S) == 143, trainer.stderr[-3000:]

    summary = trainer.summary()
    stopped_at = summary["steps"]
    assert summary["status"] == "preempted" and 20 <= stopped_at < CONFIG["total_steps"]
    assert summary["checkpoint_key"] == f"ckpt/preempted/step-{stopped_at:06d}"
    saves = [e for e in trainer.events if e["event"] == "checkpoint"]
    assert [(e["step"], e["reason"]) for e in saves] == [(stopped_at, "sigterm")]
    # Published and verifiable (the trainer waited for the write before exiting).
    manager = CheckpointManager(LocalObjectStore(inputs.root), "ckpt/preempted")
    assert manager.published_steps() == [stopped_at]
    assert manager.load_latest(summary["fingerprint"]).step == stopped_at

    resumed = start_trainer(trainer_args(inputs, "ckpt/preempted", CONFIG))
    assert resumed.finish() == 0, resumed.stderr[-3000:]
    after = resumed.summary()
    assert after["status"] == "completed" and after["steps"] == CONFIG["total_steps"]
    assert after["resumed_from_step"] == stopped_at
    assert after["steps_lost"] == 0  # nothing ran past the checkpoint
    progress = [e["step"] for e in resumed.events if e["event"] == "progress"]
    assert progress[0] == stopped_at + 1


def test_checkpoint_of_another_fingerprint_is_refused(inputs, start_trainer):
    config = {**TINY_CONFIG, "total_steps": 30, "checkpoint_every_steps": 10}
    foreign = "f" * 64  # another config / input / code version wrote this prefix
    manager = CheckpointManager(LocalObjectStore(inputs.root), "ckpt/shared")
    manager.save(40, {"model.pt": {"w": torch.zeros(1)}}, fingerprint=foreign)
    manager.close()

    refused = start_trainer(trainer_args(inputs, "ckpt/shared", config))
    assert refused.finish() == 3
    errors = [e for e in refused.events if e["event"] == "error"]
    assert len(errors) == 1 and errors[0]["error"] == "FingerprintMismatch"
    assert foreign in errors[0]["message"] and "--no-resume" in errors[0]["message"]
    assert not [e for e in refused.events if e["event"] in ("progress", "checkpoint")]
    assert manager.published_steps() == [40]  # refused means untouched

    # Starting fresh is the explicit way out; its checkpoints replace the foreign ones.
    fresh = start_trainer(trainer_args(inputs, "ckpt/shared", config, resume=False))
    assert fresh.finish() == 0, fresh.stderr[-3000:]
    assert manager.published_steps() == [10, 20, 30]
    manifest = json.loads((inputs.root / "ckpt/shared/step-000030/manifest.json").read_text())
    assert manifest["fingerprint"] == fresh.summary()["fingerprint"] != foreign
