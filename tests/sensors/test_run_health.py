"""How dead_run_sensor tells a dead run worker from a live one: by the process table only."""

import os
import signal
import subprocess
import sys
import time

import dagster as dg

from scripts.training_scenarios import wait_for
from sensors.run_health import (
    DEAD_PID_TAG,
    FAILED_BY_TAG,
    dead_run_sensor,
    held_slots,
    process_is_alive,
    process_state,
)


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_running_process_is_alive():
    process = _sleeper()
    try:
        assert process_is_alive(process.pid, started_by=time.time())
    finally:
        process.kill()
        process.wait()


def test_a_paused_process_is_alive():
    """A SIGSTOPped (or swapped-out, or checkpoint-writing) run worker is never failed."""
    process = _sleeper()
    try:
        process.send_signal(signal.SIGSTOP)
        # Until it has stopped, however long a busy machine takes to stop it (not reaped).
        os.waitid(os.P_PID, process.pid, os.WSTOPPED | os.WNOWAIT)
        assert process_state(process.pid) == "T"
        assert process_is_alive(process.pid, started_by=time.time())
    finally:
        process.kill()
        process.wait()


def test_a_killed_process_is_dead_even_before_it_is_reaped():
    process = _sleeper()
    process.kill()
    # Until it has exited, however long a busy machine takes; WNOWAIT leaves it unreaped: a
    # zombie, its parent (this test) has not waited for it.
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    assert process_state(process.pid) == "Z"
    assert not process_is_alive(process.pid, started_by=time.time())
    process.wait()
    assert not process_is_alive(process.pid, started_by=time.time())


def test_a_reused_pid_is_not_taken_for_the_run_worker():
    """The run logged its pid before this process existed: another process got the pid."""
    process = _sleeper()
    try:
        assert not process_is_alive(process.pid, started_by=time.time() - 3600)
    finally:
        process.kill()
        process.wait()


# A run executed by this process with the in-process executor (which records its pid in an
# engine event, as a run worker does), its one op holding a slot of `pool` until killed.
HOLD_SLOT = """
import sys, time
import dagster as dg

@dg.op(pool=sys.argv[1])
def hold():
    time.sleep(3600)

@dg.job
def holds_a_slot():
    hold()

with dg.DagsterInstance.get() as instance:
    holds_a_slot.execute_in_process(instance=instance)
"""


def _run_holding(home, pool: str) -> subprocess.Popen:
    with (home / f"{pool}.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-c", HOLD_SLOT, pool],
            env={**os.environ, "DAGSTER_HOME": str(home)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _holder(instance: dg.DagsterInstance, pool: str, process: subprocess.Popen, home) -> str | None:
    """The run holding `pool`'s slot; a run process that exited first fails with its output."""
    slots = instance.event_log_storage.get_concurrency_info(pool).claimed_slots
    if not slots and process.poll() is not None:
        output = (home / f"{pool}.log").read_text()[-3000:]
        raise AssertionError(f"the run holding {pool} exited {process.returncode}:\n{output}")
    return slots[0].run_id if slots else None


def test_the_tick_frees_a_dead_runs_slots_before_failing_it_and_says_so(tmp_path):
    """Two runs in their own processes each hold a pool slot; one process is SIGKILLed. One
    evaluation of the sensor frees the dead run's slot, fails it, stamps it, and names the
    slot in its result; the live run keeps its slot and stays STARTED."""
    (tmp_path / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n"
    )
    # The storage is created here, once: two processes creating a fresh SQLite instance together
    # race to stamp it ("Version table 'alembic_version' has more than one head present").
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        instance.get_runs(limit=1)
    dying, living = _run_holding(tmp_path, "gpu"), _run_holding(tmp_path, "other")
    try:
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            # Event-driven: each process has started its run and claimed its slot (a generous
            # bound only for a hung interpreter).
            dead = wait_for(
                lambda: _holder(instance, "gpu", dying, tmp_path), 300, "the gpu slot claimed"
            )
            alive = wait_for(
                lambda: _holder(instance, "other", living, tmp_path), 300, "the other slot claimed"
            )
            dying.kill()
            dying.wait()
            sensor = dead_run_sensor(dg.DefaultSensorStatus.RUNNING)

            result = sensor(dg.build_sensor_context(instance=instance))

            assert f"{dead} (pid {dying.pid}; freed slots: gpu x1)" in result.skip_message
            assert alive not in result.skip_message
            assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
            assert instance.get_run_by_id(alive).status == dg.DagsterRunStatus.STARTED
            assert held_slots(instance, dead) == {}
            assert held_slots(instance, alive) == {"other": 1}
            tags = instance.get_run_by_id(dead).tags
            assert tags[FAILED_BY_TAG] == "dead_run_sensor"
            assert tags[DEAD_PID_TAG] == str(dying.pid)
            [failure] = instance.all_logs(dead, of_type=dg.DagsterEventType.RUN_FAILURE)
            assert "Marked failed by dead_run_sensor" in failure.dagster_event.message

            again = sensor(dg.build_sensor_context(instance=instance))
            assert again.skip_message == "Every STARTED run's process is alive."
    finally:
        for process in (dying, living):
            process.kill()
            process.wait()
