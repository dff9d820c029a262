"""A training run killed outright, through the real dagster-daemon: the run worker, its step
process, the Pipes bridge and the trainer all SIGKILLed at a random step, as a node loss or the
OOM killer would. Nobody acts afterwards: dead_run_sensor fails the run, run monitoring frees
its gpu slot, run retries re-launch it, and the retry resumes from the last checkpoint and ends
with the weights of an uninterrupted run. The dead run holds the slot when killed; the retry's
training step takes it only after the run was marked failed (event order). How many seconds
that took is printed, not asserted."""

import datetime as dt
import os
import random
import time

import dagster as dg
import pytest
import torch

from assets.model.model_checkpoint import ASSET, ModelTrainingConfig, plan_training_run
from assets.model.training_dataset import manifest_key as dataset_manifest_key
from assets.partitions import training_partitions
from resources.trainer.gpu_policy import GPU_POOL
from scripts.dagster_processes import DagsterProcesses, embedded_home
from scripts.training_scenarios import (
    approve_days,
    checkpoint_weights,
    heartbeat_step,
    kill_process_tree,
    uninterrupted_weights,
    wait_for,
)
from sensors.run_health import run_process
from sensors.schedules import DAILY_RUN_TAGS

pytestmark = pytest.mark.slow

TRAINING = {"total_steps": 800, "checkpoint_every_steps": 100, "log_every_steps": 10}


def test_a_killed_training_run_frees_its_slot_and_its_retry_resumes(tmp_path):
    seed = int(os.environ.get("DEAD_RUN_TEST_SEED", random.randrange(10_000)))
    kill_at = random.Random(seed).randrange(150, 600)
    print(f"DEAD_RUN_TEST_SEED={seed}: kill at step {kill_at}")
    day = dt.date.fromisoformat(training_partitions.get_last_partition_key())
    root = tmp_path / "local"
    resources = approve_days(root, day - dt.timedelta(days=7), day, trained=[])
    store = resources["storage"].open_store()
    home = embedded_home(tmp_path / "dagster_home")
    env = {"LOCAL_DATA_DIR": str(root), "DAGSTER_DEPLOYMENT": "local"}
    with (
        DagsterProcesses(home, env, log_dir=tmp_path) as dagster,
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        run_id = dagster.launch_run(
            "daily_training_job",
            {**DAILY_RUN_TAGS, "dagster/partition": day.isoformat()},
            {"ops": {"model_checkpoint": {"config": TRAINING}}},
        )
        manifest = dataset_manifest_key(day.isoformat())
        wait_for(lambda: store.exists(manifest), 180, f"{manifest} written by the run")
        prefix = plan_training_run(
            resources["storage"], day.isoformat(), ModelTrainingConfig(**TRAINING)
        ).prefix
        wait_for(lambda: heartbeat_step(store, prefix) >= kill_at, 300, f"step {kill_at}")
        pid, _ = run_process(instance, run_id)
        holders = {
            slot.run_id
            for slot in instance.event_log_storage.get_concurrency_info(GPU_POOL).claimed_slots
        }
        assert holders == {run_id}, holders
        killed = kill_process_tree(pid)
        killed_at_step, killed_at = heartbeat_step(store, prefix), time.time()
        print(f"killed run worker {pid} and {len(killed) - 1} descendants at step {killed_at_step}")

        failed = wait_for(
            lambda: instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE,
            120,
            "the dead run marked failed",
        )
        assert failed
        marked_failed_at = instance.get_run_record_by_id(run_id).end_time
        # Whoever sees it first: the code server that started the run worker (it notices its
        # child's death) or dead_run_sensor (which also covers runs nothing watches).
        [failure] = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        print(f"failed by: {failure.dagster_event.message}")

        def retry():
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))
            return runs[0] if runs and runs[0].is_finished else None

        retried = wait_for(retry, 420, f"the retry of {run_id} finished:\n{dagster.logs()}")
        assert retried.status == dg.DagsterRunStatus.SUCCESS, dagster.logs()
        resumed = [
            entry
            for entry in instance.all_logs(retried.run_id)
            if "resumed from step" in (entry.user_message or "")
        ]
        assert resumed, "the retry did not resume from a checkpoint"
        pool = instance.event_log_storage.get_concurrency_info(GPU_POOL)
        assert not pool.claimed_slots and not pool.pending_steps
        # The slot the dead run held (checked above) went to the retry only after the run was
        # marked failed by the daemon's side: the test frees nothing.
        retry_step = min(
            entry.timestamp
            for entry in instance.all_logs(retried.run_id, of_type=dg.DagsterEventType.STEP_START)
            if entry.dagster_event.step_key == ASSET
        )
        assert failure.timestamp <= retry_step, (failure.timestamp, retry_step)

    print(
        f"kill -> marked failed {marked_failed_at - killed_at:.1f} s; kill -> resumed training "
        f"step {resumed[0].timestamp - killed_at:.1f} s ({resumed[0].user_message})"
    )
    config = ModelTrainingConfig(**TRAINING)
    expected = uninterrupted_weights(resources, day.isoformat(), config, "scratch/uninterrupted")
    actual = checkpoint_weights(store, prefix)
    assert actual.keys() == expected.keys()
    assert all(torch.equal(actual[name], expected[name]) for name in expected)
