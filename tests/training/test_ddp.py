"""Two CPU processes under torchrun (gloo): one writer, shared checkpoints, resumable."""

from __future__ import annotations

import json
import re
import signal

import pytest

from resources.storage.object_store import LocalObjectStore
from tests.support.trainer_process import TINY_CONFIG, trainer_args
from training.checkpoint import CheckpointManager

# Starts real processes (trainer, daemon/webserver, make): `make test-fast` skips it.
pytestmark = pytest.mark.slow

CONFIG = {**TINY_CONFIG, "total_steps": 200, "checkpoint_every_steps": 20, "keep_last": 3}
PREFIX = "ckpt/ddp"
_PUBLISHED = re.compile(r"rank=(\d+) INFO training\.checkpoint: Checkpoint \S+/step-(\d+)/manifest")


def _publications(stderr: str) -> list[tuple[int, int]]:
    """(rank, step) of every 'Checkpoint ... published' log line, from all workers."""
    return [(int(rank), int(step)) for rank, step in _PUBLISHED.findall(stderr)]


def _starts(stderr: str) -> set[tuple[int, int]]:
    """(rank, first step) of every worker, from its start-up log line."""
    found = re.findall(r"INFO training\.loop: rank (\d)/2 on cpu .* starting at step (\d+)", stderr)
    return {(int(rank), int(step)) for rank, step in found}


def test_two_process_gloo_run_writes_once_per_step_and_resumes(inputs, start_trainer):
    first = start_trainer(trainer_args(inputs, PREFIX, CONFIG), torchrun=2)
    # Preempt the whole job the way Kubernetes does: SIGTERM to the launcher, which forwards
    # it to both workers; they agree on a step, rank 0 saves, everyone exits.
    assert first.read_until(lambda e: e["event"] == "checkpoint" and e["step"] >= 20)
    first.proc.send_signal(signal.SIGTERM)
    assert first.finish() != 0  # torchrun reports the signal as a failure
    preempted = first.summary()
    stopped_at = preempted["steps"]
    assert preempted["status"] == "preempted" and preempted["world_size"] == 2
    assert 20 <= stopped_at < CONFIG["total_steps"]

    second = start_trainer(trainer_args(inputs, PREFIX, CONFIG), torchrun=2)
    assert second.finish() == 0, second.stderr[-3000:]
    summary = second.summary()
    assert summary["status"] == "completed" and summary["world_size"] == 2
    assert summary["resumed_from_step"] == stopped_at
    assert summary["steps"] == CONFIG["total_steps"]
    assert summary["metrics"]["eval_auc"] is not None

    # Only rank 0 ever published, and each step exactly once.
    published = _publications(first.stderr) + _publications(second.stderr)
    assert published, first.stderr[-3000:]
    assert {rank for rank, _ in published} == {0}
    steps = [step for _, step in published]
    assert len(steps) == len(set(steps))
    assert stopped_at in steps and CONFIG["total_steps"] in steps
    # Both ranks took part, and resumed from the same step.
    assert _starts(first.stderr) == {(0, 0), (1, 0)}
    assert _starts(second.stderr) == {(0, stopped_at), (1, stopped_at)}
    # Every save was announced once on stdout.
    announced = [e["step"] for p in (first, second) for e in p.events if e["event"] == "checkpoint"]
    assert sorted(announced) == sorted(steps)

    store = LocalObjectStore(inputs.root)
    manager = CheckpointManager(store, PREFIX)
    kept = manager.published_steps()
    assert kept == sorted(steps)[-CONFIG["keep_last"] :]
    for step in kept:
        manifest = json.loads(store.get_bytes(manager.manifest_key(step)))
        assert manifest["metadata"]["writer_rank"] == 0
        assert manifest["metadata"]["world_size"] == 2
