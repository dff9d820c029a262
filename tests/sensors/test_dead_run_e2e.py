"""A training run killed outright, through the real dagster-daemon: the code server that started
the run worker, the run worker, its step process, the Pipes bridge and the trainer all SIGKILLed
at a random step, as the OOM killer or a node loss would. With the code server gone, nothing
that launched the run is left to notice (the case dead_run_sensor exists for). Nobody acts
afterwards: one tick of dead_run_sensor frees the run's gpu slot and fails it, run retries
re-launch it, and the retry resumes from the last checkpoint and ends with the weights of an
uninterrupted run.

Who freed the slot is read from the records the daemon leaves behind, never from timing: the
sensor's tick record names the run and the slot it freed (so the slot was still held when the
tick ran, and nothing freed it earlier), the run's only failure event carries the sensor's
message and was written during that tick, the run carries the tags the sensor stamps, the pool
no longer lists the run, and the retry's training step starts after the tick. The test calls
no API that frees a slot. (Dagster's own run monitoring would free it too, on a later poll, but
does so silently: see sensors/run_health.py.) How many seconds it took is printed, not
asserted."""

import datetime as dt
import os
import random
import time
from pathlib import Path

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
    parent_pid,
    uninterrupted_weights,
    wait_for,
)
from sensors.run_health import DEAD_PID_TAG, FAILED_BY_TAG, held_slots, run_process
from sensors.schedules import DAILY_RUN_TAGS

# Runs the project's definitions on the example's generated data: pinned to the example.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("example_project")]

TRAINING = {"total_steps": 800, "checkpoint_every_steps": 100, "log_every_steps": 10}

# Bounds on waits for the daemon's work: only there so that a hung daemon fails the test
# instead of hanging it, generous enough for a machine whose cores other work keeps busy.
# After the kill the daemon may first need a new code server (its workspace refresh, every
# 60 s), when the one that died with the run also served its sensors.
PATIENCE_S = 900


def wait_while_training_advances(done, store, prefix: str, what: str):
    """Until `done()` returns something truthy, which it returns. Training speed is the
    machine's (seen: a step every 5 s with other work on both cores), so this fails only when
    the training heartbeat has not advanced for PATIENCE_S, never for slow but steady
    progress."""
    last, advanced = -1, time.monotonic()
    while not (value := done()):
        current = heartbeat_step(store, prefix)
        if current != last:
            last, advanced = current, time.monotonic()
        elif time.monotonic() - advanced > PATIENCE_S:
            raise TimeoutError(f"{what}: training stuck at step {current}")
        time.sleep(0.5)
    return value


def sensor_ticks_naming(instance: dg.DagsterInstance, run_id: str) -> list:
    """The ticks of dead_run_sensor whose record names `run_id` (the instance's tick storage,
    what the UI's sensor page lists)."""
    return [
        tick
        for state in instance.all_instigator_state()
        if state.name == "dead_run_sensor"
        for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id)
        if run_id in (tick.skip_reason or "")
    ]


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
        wait_for(lambda: store.exists(manifest), PATIENCE_S, f"{manifest} written by the run")
        prefix = plan_training_run(
            resources["storage"], day.isoformat(), ModelTrainingConfig(**TRAINING)
        ).prefix
        wait_while_training_advances(
            lambda: heartbeat_step(store, prefix) >= kill_at, store, prefix, f"step {kill_at}"
        )
        pid, _ = run_process(instance, run_id)
        code_server = parent_pid(pid)
        command = (Path("/proc") / str(code_server) / "cmdline").read_bytes().replace(b"\0", b" ")
        assert b"grpc" in command, f"the run worker's parent is not a code server: {command}"
        assert held_slots(instance, run_id) == {GPU_POOL: 1}
        killed = kill_process_tree(code_server)
        killed_at_step, killed_at = heartbeat_step(store, prefix), time.time()
        print(
            f"killed code server {code_server}, run worker {pid} and {len(killed) - 2} more "
            f"processes at step {killed_at_step}"
        )

        [tick] = wait_for(
            lambda: sensor_ticks_naming(instance, run_id),
            PATIENCE_S,
            f"a dead_run_sensor tick naming {run_id}:\n{dagster.logs()}",
        )
        # The tick found the slot still held by the dead run and freed it: nothing (the test,
        # run monitoring, a retry) had freed it before.
        assert f"{run_id} (pid {pid}; freed slots: {GPU_POOL} x1)" in tick.skip_reason
        assert held_slots(instance, run_id) == {}
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert run.tags[FAILED_BY_TAG] == "dead_run_sensor"
        assert run.tags[DEAD_PID_TAG] == str(pid)
        # One failure, written by the sensor during that tick (the code server died with the
        # run, so it wrote none).
        [failure] = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert "Marked failed by dead_run_sensor" in failure.dagster_event.message
        assert tick.timestamp <= failure.timestamp, (tick.timestamp, failure.timestamp)
        assert failure.timestamp <= tick.end_timestamp, (failure.timestamp, tick.end_timestamp)
        marked_failed_at = failure.timestamp

        def retry():
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))
            return runs[0] if runs and runs[0].is_finished else None

        retried = wait_while_training_advances(
            retry, store, prefix, f"the retry of {run_id} finished:\n{dagster.logs()}"
        )
        assert retried.status == dg.DagsterRunStatus.SUCCESS, dagster.logs()
        resumed = [
            entry
            for entry in instance.all_logs(retried.run_id)
            if "resumed from step" in (entry.user_message or "")
        ]
        assert resumed, "the retry did not resume from a checkpoint"
        pool = instance.event_log_storage.get_concurrency_info(GPU_POOL)
        assert not pool.claimed_slots and not pool.pending_steps
        retry_step = min(
            entry.timestamp
            for entry in instance.all_logs(retried.run_id, of_type=dg.DagsterEventType.STEP_START)
            if entry.dagster_event.step_key == ASSET
        )
        assert tick.end_timestamp <= retry_step, (tick.end_timestamp, retry_step)

    print(
        f"kill -> marked failed {marked_failed_at - killed_at:.1f} s; kill -> resumed training "
        f"step {resumed[0].timestamp - killed_at:.1f} s ({resumed[0].user_message})"
    )
    config = ModelTrainingConfig(**TRAINING)
    expected = uninterrupted_weights(resources, day.isoformat(), config, "scratch/uninterrupted")
    actual = checkpoint_weights(store, prefix)
    assert actual.keys() == expected.keys()
    assert all(torch.equal(actual[name], expected[name]) for name in expected)
