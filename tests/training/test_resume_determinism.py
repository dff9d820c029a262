"""A run SIGKILLed at a random step and resumed ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
import torch

from resources.storage.object_store import LocalObjectStore
from tests.support.trainer_process import INPUT_TABLES, TINY_CONFIG, trainer_args
from training.checkpoint import CheckpointManager
from training.config import TrainConfig
from training.streaming import ExampleSource, StreamingBatches

# Starts real processes (trainer, daemon/webserver, make): `make test-fast` skips it.
pytestmark = pytest.mark.slow

CONFIG = {
    **TINY_CONFIG,
    "total_steps": 200,
    # Time-based saves too, so checkpoint steps differ between runs: they must not matter.
    "checkpoint_every_seconds": 0.05,
}
# The length from the data: four passes over the training rows (about 150 steps), the cap far.
EPOCHS_CONFIG = {**CONFIG, "total_steps": 10_000, "epochs": 4}


def _final_state(root: Path, prefix: str, step: int) -> dict:
    loaded = CheckpointManager(LocalObjectStore(root), prefix).load_step(step, fingerprint=None)
    return loaded.payloads


def _has_manifest(root: Path, prefix: str) -> bool:
    return any((root / prefix).glob("step-*/manifest.json"))


@pytest.mark.parametrize("config", [CONFIG, EPOCHS_CONFIG], ids=["total_steps", "epochs"])
def test_sigkill_at_random_steps_then_resume_matches_uninterrupted(inputs, start_trainer, config):
    reference = start_trainer(trainer_args(inputs, "ckpt/reference", config))
    assert reference.finish() == 0, reference.stderr[-3000:]
    final_step = reference.summary()["steps"]
    assert final_step > 100  # past every step a kill is drawn from
    expected = _final_state(inputs.root, "ckpt/reference", final_step)
    expected_metrics = reference.summary()["metrics"]

    # Replay a failure with RESUME_TEST_SEED=<seed printed below> (pytest -s shows it).
    seed = int(os.environ.get("RESUME_TEST_SEED") or random.randrange(2**32))
    print(f"kill steps drawn from seed {seed} (replay with RESUME_TEST_SEED={seed})")
    steps = random.Random(seed).sample(range(30, 100), 2)
    for attempt, kill_at in enumerate(steps):
        prefix = f"ckpt/killed-{attempt}"
        victim = start_trainer(trainer_args(inputs, prefix, config))
        # Kill once the chosen step is reached and at least one checkpoint is published, so
        # the resume below really starts mid-run (not from scratch).
        reached = victim.read_until(
            lambda e, prefix=prefix, kill_at=kill_at: (
                e["event"] == "progress"
                and e["step"] >= kill_at
                and _has_manifest(inputs.root, prefix)
            )
        )
        assert reached is not None, f"trainer ended before step {kill_at} (seed {seed})"
        victim.proc.send_signal(signal.SIGKILL)
        assert victim.finish() == -signal.SIGKILL, f"seed {seed}: trainer was not killed"
        assert not [e for e in victim.events if e["event"] == "summary"]
        last_seen = max(e["step"] for e in victim.events if e["event"] == "progress")

        resumed = start_trainer(trainer_args(inputs, prefix, config))
        assert resumed.finish() == 0, resumed.stderr[-3000:]
        summary = resumed.summary()
        assert summary["status"] == "completed"
        assert summary["resumed_from_step"] is not None, f"seed {seed}: {summary}"
        assert 0 < summary["resumed_from_step"] <= last_seen
        # The heartbeat is written every step here, so it knows the last step reached before
        # the kill (the victim may have got a step or two past the last line we read).
        assert summary["resumed_from_step"] + summary["steps_lost"] >= last_seen

        assert summary["steps"] == final_step
        actual = _final_state(inputs.root, prefix, final_step)
        for name, tensor in expected["model.pt"].items():
            assert torch.equal(actual["model.pt"][name], tensor), (
                f"seed {seed}, killed at step {kill_at}: weight {name} differs"
            )
        assert summary["metrics"] == expected_metrics


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_run_killed_mid_epoch_resumes_to_the_uninterrupted_weights(
    inputs, start_trainer, workers
):
    # Two partitions of one row group each: an epoch is a few dozen batches, and saving every
    # 25 steps (not a multiple of it) makes the resume start inside an epoch and a window.
    config = {
        **CONFIG,
        "checkpoint_every_seconds": 3600.0,
        "data_loading": "streaming",
        "shuffle_buffer_rows": 512,
        "loader_workers": workers,
    }
    reference = start_trainer(trainer_args(inputs, "ckpt/streamed", config))
    assert reference.finish() == 0, reference.stderr[-3000:]
    expected = _final_state(inputs.root, "ckpt/streamed", config["total_steps"])

    seed = int(os.environ.get("RESUME_TEST_SEED") or random.randrange(2**32))
    print(f"kill step drawn from seed {seed} (replay with RESUME_TEST_SEED={seed})")
    kill_at = random.Random(seed).randrange(30, 100)
    prefix = "ckpt/streamed-killed"
    victim = start_trainer(trainer_args(inputs, prefix, config))
    reached = victim.read_until(
        lambda e: (
            e["event"] == "progress" and e["step"] >= kill_at and _has_manifest(inputs.root, prefix)
        )
    )
    assert reached is not None, f"trainer ended before step {kill_at} (seed {seed})"
    victim.proc.send_signal(signal.SIGKILL)
    assert victim.finish() == -signal.SIGKILL, f"seed {seed}: trainer was not killed"

    resumed = start_trainer(trainer_args(inputs, prefix, config))
    assert resumed.finish() == 0, resumed.stderr[-3000:]
    summary = resumed.summary()
    assert summary["resumed_from_step"], f"seed {seed}: {summary}"
    batches = StreamingBatches(
        ExampleSource(LocalObjectStore(inputs.root), INPUT_TABLES, TrainConfig(**config)),
        TrainConfig(**config),
        rank=0,
        world_size=1,
    )
    per_epoch = batches.batches_in_epoch(0)
    resumed_from = summary["resumed_from_step"]
    print(f"resumed at step {resumed_from}: batch {resumed_from % per_epoch} of {per_epoch}")
    assert resumed_from % per_epoch, f"seed {seed}: resumed at an epoch boundary"
    actual = _final_state(inputs.root, prefix, config["total_steps"])
    for name, tensor in expected["model.pt"].items():
        assert torch.equal(actual["model.pt"][name], tensor), (
            f"seed {seed}, killed at step {kill_at}: weight {name} differs"
        )
    assert summary["metrics"] == reference.summary()["metrics"]
    assert summary["metrics"]["train_examples"] > 0
