"""How long the daily training run waits for the GPU while a training backfill holds it.

Through the real dagster-daemon and dagster-webserver on the embedded instance (`gpu` pool of
1): a training backfill over the two days before the newest is launched with the UI's
mutation, each of its runs training long enough to hold the GPU for about a minute; once the
first holds the GPU, the daily training run of the newest day is launched (as the daily
sensor requests it). The scenario runs twice, with preemption (the default policy) and with it
switched off (`GPU_MAX_PREEMPTIONS=0`), and prints for each the seconds from the daily run's
request, and from its training step's first wait for the pool, until that step holds the GPU;
how long the daily run waited in the run queue; and, with preemption, the seconds from the daily
run's request until the preempted backfill step ended and gave the GPU back.

    python -m benchmarks.daily_vs_backfill [--hold-seconds 60] [--only on|off]

Last line: `daily_dequeue_s=… daily_gpu_wait_s=… preempt_s=… steps_lost=… preemptions=…
backfill_complete=true|false`, the preemption run's figures (the off run's wait is printed
above it for comparison).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from assets.model.model_checkpoint import ASSET, ModelTrainingConfig, plan_training_run
from assets.partitions import training_partitions
from resources.trainer.gpu_policy import GPU_POOL
from resources.trainer.preemption import PREEMPTIONS_TAG
from scripts.dagster_processes import DagsterProcesses, embedded_home
from scripts.training_scenarios import (
    approve_days,
    checkpoint_weights,
    heartbeat_step,
    run_partition,
    steps_for_seconds,
    uninterrupted_weights,
    wait_for,
)
from sensors.schedules import DAILY_RUN_TAGS

STEPS_LOST = re.compile(r"preempted for daily run \S+ at step (\d+); checkpoint at step (\d+)")


@dataclass
class Outcome:
    preemption: bool
    steps_per_day: int
    request_to_gpu_s: float
    wait_to_gpu_s: float
    # RUN_ENQUEUED to RUN_STARTING of the daily run (the run coordinator taking it).
    daily_dequeue_s: float
    # The daily run's request to the end of the preempted backfill step (None: no preemption).
    request_to_yield_s: float | None
    # Each backfill step preempted for the daily run ended before the daily run's training step
    # started (event order; True when nothing was preempted).
    yielded_before_daily_step: bool
    # A tick of the preemption sensor saw the daily step waiting for the GPU, and ended before
    # the backfill step holding it ended: the contention preemption exists for arose. False when
    # the backfill step finished first (a machine faster than the speed probe measured).
    contended: bool
    checkpoint_interval: int
    steps_lost: int
    preemptions: int
    backfill_complete: bool
    daily_succeeded: bool
    # (day, weights equal to an uninterrupted run of that day) for each preempted day
    preempted_days_equal: list[tuple[str, bool]]


def _holders(instance) -> set[str]:
    return {
        slot.run_id
        for slot in instance.event_log_storage.get_concurrency_info(GPU_POOL).claimed_slots
    }


def _event_times(instance, run_id: str, event_type: dg.DagsterEventType) -> list[float]:
    return [
        entry.timestamp
        for entry in instance.all_logs(run_id, of_type=event_type)
        if entry.dagster_event.step_key in (None, ASSET)
    ]


def _yields(instance, preempted: list[dg.DagsterRun], daily: str) -> list[float]:
    """When each backfill step preempted for `daily` ended (its retry requested, its GPU slot
    handed back)."""
    ended = []
    for run in preempted:
        entries = instance.all_logs(run.run_id)
        for index, entry in enumerate(entries):
            if f"preempted for daily run {daily} at step" in (entry.user_message or ""):
                ended.extend(
                    later.timestamp
                    for later in entries[index:]
                    if later.dagster_event
                    and later.dagster_event.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
                    and later.dagster_event.step_key == ASSET
                )
                break
    return ended


def _step_end(instance, run_id: str) -> float | None:
    """When `run_id`'s training step first ended (succeeded, failed, or yielded for a retry)."""
    ends = (
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
        dg.DagsterEventType.STEP_UP_FOR_RETRY,
    )
    return min(
        (
            entry.timestamp
            for entry in instance.all_logs(run_id)
            if entry.dagster_event
            and entry.dagster_event.event_type in ends
            and entry.dagster_event.step_key == ASSET
        ),
        default=None,
    )


def _sensor_saw_contention(instance, daily: str, holder: str) -> bool:
    """Whether a gpu_preemption_sensor tick that named the daily run (waiting, or preempting for
    it) ended while `holder`'s training step still held the GPU."""
    held_until = _step_end(instance, holder)
    return any(
        daily in (tick.skip_reason or "")
        and tick.end_timestamp is not None
        and (held_until is None or tick.end_timestamp < held_until)
        for state in instance.all_instigator_state()
        if state.instigator_name == "gpu_preemption_sensor"
        for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id)
    )


def run_scenario(
    workdir: Path, *, preemption: bool, hold_seconds: float, backfill_day_count: int = 2
) -> Outcome:
    """The scenario over the `backfill_day_count` days before the newest (the benchmark's two
    show the backfill's second day waiting behind the daily run too; one is enough to preempt)."""
    newest = dt.date.fromisoformat(training_partitions.get_last_partition_key())
    backfill_days = [newest - dt.timedelta(days=n) for n in range(backfill_day_count, 0, -1)]
    root = workdir / "local"
    # Eight days before the oldest backfill day: its 7-day window and the history before it.
    resources = approve_days(root, backfill_days[0] - dt.timedelta(days=8), newest, backfill_days)
    store = resources["storage"].open_store()
    # Steps that keep the GPU busy for `hold_seconds` at this machine's measured speed.
    steps = steps_for_seconds(resources, backfill_days[0].isoformat(), hold_seconds, 50)
    interval = max(10, steps // 5)
    config = {
        "total_steps": steps,
        "checkpoint_every_steps": interval,
        "log_every_steps": max(5, steps // 50),
    }
    env = {
        "LOCAL_DATA_DIR": str(root),
        "DAGSTER_DEPLOYMENT": "local",
        "GPU_MAX_PREEMPTIONS": "2" if preemption else "0",
    }
    home = embedded_home(workdir / "dagster_home")
    with (
        DagsterProcesses(home, env, log_dir=workdir) as dagster,
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        backfill_id = dagster.launch_asset_backfill(
            [ASSET],
            [day.isoformat() for day in backfill_days],
            run_config={"ops": {ASSET: {"config": config}}},
        )
        holder = wait_for(
            lambda: next(iter(_holders(instance)), None), 300, "a backfill run on the GPU"
        )
        held_day = run_partition(instance.get_run_by_id(holder))
        prefix = plan_training_run(
            resources["storage"], held_day, ModelTrainingConfig(**config)
        ).prefix
        # The daily run is requested once the backfill's trainer is under way: the rest of its
        # minute on the GPU is what the daily run would otherwise wait for.
        wait_for(lambda: heartbeat_step(store, prefix) > 0, 600, f"{held_day} training")

        requested = time.time()
        daily = dagster.launch_run(
            "daily_training_job", {**DAILY_RUN_TAGS, "dagster/partition": newest.isoformat()}
        )
        queued_for_pool: list[float] = []

        def daily_on_gpu() -> bool:
            pool = instance.event_log_storage.get_concurrency_info(GPU_POOL)
            queued_for_pool.extend(
                step.enqueued_timestamp.timestamp()
                for step in pool.pending_steps
                if step.run_id == daily
            )
            return daily in {slot.run_id for slot in pool.claimed_slots}

        wait_for(daily_on_gpu, 900, "the daily step on the GPU", interval=0.2)
        on_gpu = time.time()
        first_wait = min(queued_for_pool, default=on_gpu)
        status = dagster.wait_for_backfill(backfill_id, timeout=1800)
        wait_for(lambda: instance.get_run_by_id(daily).is_finished, 600, "the daily run's end")
        daily_ok = instance.get_run_by_id(daily).status == dg.DagsterRunStatus.SUCCESS
        backfill_runs = instance.get_runs(
            filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id})
        )
        preempted = [run for run in backfill_runs if PREEMPTIONS_TAG in run.tags]
        lost = [
            int(match[1]) - int(match[2])
            for run in preempted
            for entry in instance.all_logs(run.run_id)
            for match in [STEPS_LOST.search(entry.user_message or "")]
            if match
        ]
        [enqueued] = _event_times(instance, daily, dg.DagsterEventType.RUN_ENQUEUED)
        [dequeued] = _event_times(instance, daily, dg.DagsterEventType.RUN_STARTING)
        daily_step_start = min(_event_times(instance, daily, dg.DagsterEventType.STEP_START))
        yields = _yields(instance, preempted, daily)
        contended = _sensor_saw_contention(instance, daily, holder)
        materialized = instance.get_materialized_partitions(dg.AssetKey(ASSET))
        complete = status == "COMPLETED_SUCCESS" and all(
            day.isoformat() in materialized for day in backfill_days
        )
    equal = []
    for run in preempted:
        day = run_partition(run)
        plan_prefix = plan_training_run(
            resources["storage"], day, ModelTrainingConfig(**config)
        ).prefix
        actual = checkpoint_weights(store, plan_prefix)
        expected = uninterrupted_weights(
            resources, day, ModelTrainingConfig(**config), f"scratch/uninterrupted/{day}"
        )
        equal.append(
            (
                day,
                actual.keys() == expected.keys()
                and all(actual[k].equal(expected[k]) for k in expected),
            )
        )
    return Outcome(
        preemption=preemption,
        steps_per_day=steps,
        request_to_gpu_s=on_gpu - requested,
        wait_to_gpu_s=on_gpu - first_wait,
        daily_dequeue_s=dequeued - enqueued,
        request_to_yield_s=min(yields) - requested if yields else None,
        yielded_before_daily_step=len(yields) == len(lost)
        and all(ended < daily_step_start for ended in yields),
        contended=contended,
        checkpoint_interval=interval,
        steps_lost=max(lost, default=0),
        preemptions=len(lost),
        backfill_complete=complete,
        daily_succeeded=daily_ok,
        preempted_days_equal=equal,
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def describe(outcome: Outcome) -> str:
    return (
        f"preemption {'on ' if outcome.preemption else 'off'} ({outcome.steps_per_day} steps a "
        f"backfill day, a checkpoint every {outcome.checkpoint_interval}): daily run in the run "
        f"queue {outcome.daily_dequeue_s:.1f} s; daily request -> its training step on the GPU "
        f"{outcome.request_to_gpu_s:.1f} s (of which waiting for the pool "
        f"{outcome.wait_to_gpu_s:.1f} s); daily request -> the backfill step yielded "
        f"{_seconds(outcome.request_to_yield_s)}, before the daily step started "
        f"{outcome.yielded_before_daily_step}; the sensor saw the daily run wait while the "
        f"backfill held the GPU {outcome.contended}; preemptions {outcome.preemptions}, steps lost "
        f"{outcome.steps_lost}; backfill complete {outcome.backfill_complete}; daily run "
        f"succeeded {outcome.daily_succeeded}; preempted days equal to an uninterrupted run "
        f"{outcome.preempted_days_equal}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--hold-seconds", type=float, default=60, help="training time of each backfill day"
    )
    parser.add_argument("--only", choices=("on", "off"), help="run one scenario only")
    args = parser.parse_args()
    outcomes = {}
    for mode in ("off", "on"):
        if args.only and args.only != mode:
            continue
        with tempfile.TemporaryDirectory(prefix=f"daily-vs-backfill-{mode}-") as workdir:
            outcomes[mode] = run_scenario(
                Path(workdir), preemption=mode == "on", hold_seconds=args.hold_seconds
            )
        print(describe(outcomes[mode]), flush=True)
    last = outcomes.get("on") or outcomes["off"]
    print(
        f"daily_dequeue_s={last.daily_dequeue_s:.1f} daily_gpu_wait_s={last.request_to_gpu_s:.1f} "
        f"preempt_s={_seconds(last.request_to_yield_s).removesuffix(' s')} "
        f"steps_lost={last.steps_lost} "
        f"preemptions={last.preemptions} backfill_complete={str(last.backfill_complete).lower()}"
    )


if __name__ == "__main__":
    main()
