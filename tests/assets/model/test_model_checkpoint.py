"""The training asset through Dagster: gated inputs, fingerprinted checkpoints, and a first
attempt killed mid-training that Dagster's retry resumes."""

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from assets.model.model_checkpoint import model_checkpoint
from assets.partitions import partition_range_tags
from resources.factory import build_resources
from tests.support.example import (
    example_daily_events,
    example_feature_assets,
    example_training_dataset,
)

# Starts real processes (trainer, daemon/webserver, make): `make test-fast` skips it.
pytestmark = pytest.mark.slow

DAY = "2026-11-06"
WINDOW = ("2026-10-31", DAY)
ALL_ASSETS = [
    example_daily_events,
    *example_feature_assets,
    example_training_dataset,
    model_checkpoint,
]
TRAINING = {
    "total_steps": 900,
    "batch_size": 128,
    "warmup_steps": 20,
    "checkpoint_every_steps": 100,
    "checkpoint_every_seconds": 3600.0,
    "log_every_steps": 10,
}


@pytest.fixture(scope="module")
def approved_window(tmp_path_factory, seeded_sqlite) -> Path:
    """Features for the 7-day window and the training set of DAY, all gates passed."""
    root = tmp_path_factory.mktemp("approved")
    shutil.copyfile(seeded_sqlite, root / "warehouse.sqlite")
    resources = build_resources("local", local_root=root)
    tags = partition_range_tags(*WINDOW)
    features = [example_daily_events, *example_feature_assets]
    assert dg.materialize(features, resources=resources, tags=tags).success
    assert dg.materialize(
        ALL_ASSETS, selection=[example_training_dataset.key], partition_key=DAY, resources=resources
    ).success
    return root


def _env(approved_window, tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "env"
    shutil.copytree(approved_window, root)
    return root, build_resources("local", local_root=root)


def _train(resources, instance=None, **config):
    return dg.materialize(
        ALL_ASSETS,
        selection=[model_checkpoint.key],
        partition_key=DAY,
        resources=resources,
        instance=instance,
        run_config={"ops": {"model_checkpoint": {"config": {**TRAINING, **config}}}},
        raise_on_error=False,
    )


def _metadata(result) -> dict:
    """The materialization's metadata, with the attempt's bookkeeping entry flattened in."""
    [event] = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    return {**metadata, **metadata["training_run"]}


class _KillTrainerMidway(threading.Thread):
    """SIGKILLs the trainer process (like the OOM killer or a node loss) once its heartbeat
    shows `after_step`, found by its command line under `root`."""

    def __init__(self, root: Path, after_step: int):
        super().__init__(daemon=True)
        self.root, self.after_step = root, after_step
        self.killed_at: int | None = None
        self.done = threading.Event()

    def _heartbeat_step(self) -> int:
        steps = [
            json.loads(path.read_text())["step"]
            for path in self.root.glob("object-store/checkpoints/**/progress.json")
        ]
        return max(steps, default=0)

    def _trainer_pids(self) -> list[int]:
        pids = []
        for proc in Path("/proc").iterdir():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            is_trainer = b"training" in argv and argv[argv.index(b"training") - 1] == b"-m"
            if is_trainer and any(str(self.root).encode() in a for a in argv):
                pids.append(int(proc.name))
        return pids

    def run(self) -> None:
        while not self.done.is_set():
            step = self._heartbeat_step()
            if step >= self.after_step:
                for pid in self._trainer_pids():
                    os.kill(pid, signal.SIGKILL)
                    self.killed_at = step
                return
            time.sleep(0.01)


def test_killed_first_attempt_is_resumed_by_dagsters_retry(approved_window, tmp_path):
    root, resources = _env(approved_window, tmp_path)
    killer = _KillTrainerMidway(root, after_step=350)
    killer.start()
    instance = dg.DagsterInstance.ephemeral()
    try:
        result = _train(resources, instance=instance)
    finally:
        killer.done.set()
        killer.join(timeout=10)

    assert killer.killed_at is not None, "the trainer finished before it could be killed"
    assert result.success, [
        e.step_failure_data.error.message for e in result.get_step_failure_events()
    ]
    retries = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert len(retries) == 1
    metadata = _metadata(result)
    print(
        f"killed at step {killer.killed_at}; resumed from {metadata['resumed_from_step']}, "
        f"lost {metadata['steps_lost']} steps"
    )
    assert metadata["attempt"] == 2
    assert 0 < metadata["resumed_from_step"] <= killer.killed_at
    assert metadata["steps_lost"] <= TRAINING["checkpoint_every_steps"]
    assert metadata["steps"] == TRAINING["total_steps"]
    assert 0.0 < metadata["eval_auc"] <= 1.0
    assert metadata["checkpoint_key"].startswith(f"checkpoints/model_checkpoint/{DAY}/")
    # The window's 7 days of examples and, as history, the user and item features of its 6
    # days before DAY (never DAY's own).
    assert len(metadata["input_data_versions"]) == 7 + 6 + 6
    assert metadata["lineage"]["parent"] is None and metadata["lineage"]["init_from"] == "none"
    assert metadata["warm_start_from"]["day"] is None
    progress_logs = [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if "samples/s" in (entry.user_message or "")
    ]
    assert progress_logs and "ETA" in progress_logs[-1]


def test_other_settings_train_fresh_under_their_own_fingerprint(approved_window, tmp_path):
    _, resources = _env(approved_window, tmp_path)
    first = _metadata(_train(resources, total_steps=200))
    second = _metadata(_train(resources, total_steps=200, lr=1e-3))
    again = _metadata(_train(resources, total_steps=200))
    assert first["fingerprint"] != second["fingerprint"]
    assert first["checkpoint_key"] != second["checkpoint_key"]
    assert second["resumed_from_step"] == 0
    # The same settings find their finished checkpoint: nothing left to train.
    assert again["fingerprint"] == first["fingerprint"]
    assert again["resumed_from_step"] == 200


def test_a_deployment_selects_streaming_through_the_asset_config(approved_window, tmp_path):
    _, resources = _env(approved_window, tmp_path)
    in_memory = _metadata(_train(resources, total_steps=100))
    result = _train(
        resources,
        total_steps=100,
        data_loading="streaming",
        shuffle_buffer_rows=4096,
        loader_workers=1,
    )
    assert result.success
    streamed = _metadata(result)
    config = streamed["lineage"]["config"]
    assert (config["data_loading"], config["shuffle_buffer_rows"], config["loader_workers"]) == (
        "streaming",
        4096,
        1,
    )
    assert in_memory["lineage"]["config"]["data_loading"] == "in_memory"
    # Another row order, other weights: its own fingerprint, trained from step 0.
    assert streamed["fingerprint"] != in_memory["fingerprint"]
    assert streamed["resumed_from_step"] == 0 and streamed["steps"] == 100
    # Both read the same declared window and split: the same training rows.
    assert streamed["train_examples"] == in_memory["train_examples"] > 0
    assert 0.5 < streamed["eval_auc"] <= 1.0


def test_resuming_across_fingerprints_is_refused(approved_window, tmp_path):
    _, resources = _env(approved_window, tmp_path)
    first = _metadata(_train(resources, total_steps=100))
    instance = dg.DagsterInstance.ephemeral()
    refused = _train(
        resources,
        instance=instance,
        total_steps=100,
        lr=5e-4,
        resume_fingerprint=first["fingerprint"][:16],
    )
    assert not refused.success
    message = refused.get_step_failure_events()[0].step_failure_data.error.message
    assert f"asked to resume run {first['fingerprint'][:16]}" in message
    assert "A checkpoint only resumes the run that wrote it" in message
    assert instance.all_logs(refused.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY) == []


def test_training_without_an_approved_training_set_is_refused(tmp_path, seeded_sqlite):
    root = tmp_path / "env"
    root.mkdir()
    shutil.copyfile(seeded_sqlite, root / "warehouse.sqlite")
    result = _train(build_resources("local", local_root=root))
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert f"No training set for {DAY}" in message and "Materialize training_dataset" in message
