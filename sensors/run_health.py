"""Runs whose process is gone are failed within seconds, so their pool slots come back.

Dagster's default run launcher cannot tell that a run worker died (SIGKILL, the OOM killer, a
laptop's lid): the run stays STARTED until `run_monitoring.max_runtime_seconds` and keeps its
`gpu` slot, so every later training run waits behind a corpse. This sensor reads, for every
STARTED run, the pid of the process that executes it (the engine event Dagster writes when the
run worker or the multiprocess executor starts) and, when that process no longer exists, frees
the run's pool slots and fails it in the same tick, stamping the run with who did it and why
(tags below); `run_retries` re-launches it and the retry resumes from the last checkpoint.

Why the tick frees the slots itself: `run_monitoring.free_slots_after_run_end_seconds` also
frees a finished run's slots, but only on a later monitoring poll, and (Dagster 1.13) without
a trace: its "Freed N slots" log line is guarded by the return value of
`free_concurrency_slots_for_run`, which the SQL event log storages return as None. The tick
names the slots it freed in its own record, which the UI shows. Slots are freed before the run
is failed, so the run is still STARTED and run monitoring cannot free them first; the process
that held them is already gone, so nothing else can be using them.

Why it cannot fail a live run: it judges only by the operating system's process table on this
host, never by silence, so a long checkpoint write, a paused (SIGSTOPped) process or a busy
machine all count as alive. A pid reused by a younger process is not taken for the run worker
(its start time is after the run's). It is used where runs are processes on the same machine
(the local deployment); on Kubernetes the K8sRunLauncher's own run-worker health check does
this job (run monitoring in deployments/k8s/values.yaml).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg

PROC = Path("/proc")

# Stamped on every run this sensor fails: the sensor's name, and the pid found gone.
FAILED_BY_TAG = "ml-template/failed-by"
DEAD_PID_TAG = "ml-template/dead-pid"


def process_start_time(pid: int) -> float | None:
    """Epoch seconds when `pid` started (Linux /proc), None when unknown."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        uptime = float((PROC / "uptime").read_text().split()[0])
    except (OSError, ValueError):
        return None
    # Field 22 (starttime, in clock ticks since boot) follows the parenthesised command name.
    fields = stat.rsplit(")", 1)[1].split()
    started_ticks = int(fields[19])
    return time.time() - uptime + started_ticks / os.sysconf("SC_CLK_TCK")


def process_state(pid: int) -> str | None:
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def process_is_alive(pid: int, started_by: float) -> bool:
    """Whether the process that logged `started_by` (epoch seconds) as pid `pid` still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    if process_state(pid) in ("Z", "X"):  # a zombie: exited, not yet reaped by its parent
        return False
    started = process_start_time(pid)
    # A process started after the run's pid was logged is another process that got the pid.
    return started is None or started <= started_by + 1.0


def run_process(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, when it was logged) of the process executing the run: the first engine event that
    names a pid for the whole run (run worker, or the multiprocess executor's parent), not a
    step's subprocess."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=50
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        metadata = event.engine_event_data.metadata if event and event.engine_event_data else {}
        if "pid" in metadata and event.step_key is None:
            return int(metadata["pid"].value), record.event_log_entry.timestamp
    return None


def held_slots(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    """How many slots of each pool `run_id` holds now."""
    held: dict[str, int] = {}
    for pool in sorted(instance.event_log_storage.get_concurrency_keys()):
        count = sum(
            slot.run_id == run_id
            for slot in instance.event_log_storage.get_concurrency_info(pool).claimed_slots
        )
        if count:
            held[pool] = count
    return held


def release_dead_run(instance: dg.DagsterInstance, run: dg.DagsterRun, pid: int) -> str:
    """Frees the pool slots of `run`, whose process `pid` is gone, then fails it; says what it
    did (the tick's record names it)."""
    instance.add_run_tags(run.run_id, {FAILED_BY_TAG: "dead_run_sensor", DEAD_PID_TAG: str(pid)})
    held = held_slots(instance, run.run_id)
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    freed = {
        pool: count - held_slots(instance, run.run_id).get(pool, 0) for pool, count in held.items()
    }
    instance.report_run_failed(
        run,
        f"The process executing this run (pid {pid}) no longer exists: it was killed "
        "(SIGKILL, out of memory, node loss) without reporting an end. Marked failed "
        "by dead_run_sensor, which freed its pool slots; run retries re-launch it and "
        "training resumes from its last checkpoint.",
    )
    slots = ", ".join(f"{pool} x{count}" for pool, count in freed.items()) or "none held"
    return f"{run.run_id} (pid {pid}; freed slots: {slots})"


def dead_run_sensor(default_status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.sensor(
        name="dead_run_sensor",
        minimum_interval_seconds=10,
        default_status=default_status,
        description="Fails STARTED runs whose process is gone (killed, OOM) and frees their "
        "pool slots, so run retries re-launch them.",
    )
    def sensor(context: dg.SensorEvaluationContext):
        instance = context.instance
        released = []
        for record in instance.get_run_records(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]), limit=200
        ):
            run = record.dagster_run
            process = run_process(instance, run.run_id)
            if process is None or process_is_alive(*process):
                continue
            released.append(release_dead_run(instance, run, process[0]))
        if not released:
            return dg.SkipReason("Every STARTED run's process is alive.")
        context.log.warning(f"marked failed: {', '.join(released)}")
        return dg.SkipReason(f"Marked failed, process gone: {', '.join(released)}")

    return sensor
