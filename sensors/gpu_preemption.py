"""A daily training run never waits for the GPU behind a backfill: the backfill yields.

Every few seconds this sensor reads the `gpu` pool. When a daily run's step waits for a slot
that backfill training holds, it asks the newest such backfill run to stop (a request object
that the run's Pipes bridge answers with SIGTERM): the trainer saves a checkpoint at its next
step boundary and exits, the slot goes to the daily step (it has the higher priority), and
the preempted step waits for the pool again and later resumes from that checkpoint. A daily run
is never preempted; a backfill run at most `GpuPolicy.max_preemptions_per_run` times.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from resources.storage.resource import ObjectStorage
from resources.trainer.gpu_policy import GPU_POOL, GpuPolicy
from resources.trainer.preemption import PREEMPTIONS_TAG, pending_requests, request_preemption
from sensors.schedules import BACKFILL_TAG, is_daily_run


@dataclass(frozen=True)
class SlotHolder:
    """A run holding a gpu slot, as the decision needs it."""

    run_id: str
    is_backfill: bool
    preemptions: int
    created: float


@dataclass(frozen=True)
class Preemption:
    victim_run_id: str
    for_run_id: str


def plan_preemptions(
    waiting_daily_run_ids: list[str],
    holders: list[SlotHolder],
    requested: set[str],
    max_preemptions: int,
) -> list[Preemption]:
    """One victim per waiting daily run, minus requests already on their way: the newest
    backfill holders first (the least work behind them), none past its preemption limit."""
    in_flight = [h for h in holders if h.run_id in requested]
    needed = waiting_daily_run_ids[len(in_flight) :]
    candidates = sorted(
        (
            h
            for h in holders
            if h.is_backfill and h.run_id not in requested and h.preemptions < max_preemptions
        ),
        key=lambda h: h.created,
        reverse=True,
    )
    return [
        Preemption(victim.run_id, daily) for victim, daily in zip(candidates, needed, strict=False)
    ]


def gpu_preemption_sensor(default_status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.sensor(
        name="gpu_preemption_sensor",
        minimum_interval_seconds=5,
        default_status=default_status,
        description="Frees a gpu slot for a waiting daily training run by preempting the newest "
        "backfill training run (it checkpoints and resumes later).",
    )
    def sensor(context: dg.SensorEvaluationContext, storage: ObjectStorage, gpu_policy: GpuPolicy):
        instance = context.instance
        pool = instance.event_log_storage.get_concurrency_info(GPU_POOL)
        waiting = [s.run_id for s in pool.pending_steps if s.assigned_timestamp is None]
        if not waiting:
            return dg.SkipReason("No step waits for the gpu pool.")
        runs = {
            record.dagster_run.run_id: record
            for record in instance.get_run_records(
                filters=dg.RunsFilter(
                    run_ids=list({*waiting, *(slot.run_id for slot in pool.claimed_slots)})
                )
            )
        }
        waiting_daily = [
            run_id
            for run_id in dict.fromkeys(waiting)
            if run_id in runs and is_daily_run(runs[run_id].dagster_run)
        ]
        if not waiting_daily:
            return dg.SkipReason(f"{len(waiting)} step(s) wait for the gpu pool, none daily.")
        holders = [
            SlotHolder(
                run_id=slot.run_id,
                is_backfill=BACKFILL_TAG in runs[slot.run_id].dagster_run.tags,
                preemptions=int(runs[slot.run_id].dagster_run.tags.get(PREEMPTIONS_TAG, "0")),
                created=runs[slot.run_id].create_timestamp.timestamp(),
            )
            for slot in pool.claimed_slots
            if slot.run_id in runs
        ]
        store = storage.open_store()
        plan = plan_preemptions(
            waiting_daily, holders, pending_requests(store), gpu_policy.max_preemptions_per_run
        )
        if not plan:
            return dg.SkipReason(
                f"Daily run(s) {', '.join(waiting_daily)} wait for the gpu pool; no backfill "
                "holder can be preempted (none, already asked, or at the preemption limit "
                f"{gpu_policy.max_preemptions_per_run})."
            )
        for preemption in plan:
            victim = runs[preemption.victim_run_id].dagster_run
            count = int(victim.tags.get(PREEMPTIONS_TAG, "0")) + 1
            instance.add_run_tags(victim.run_id, {PREEMPTIONS_TAG: str(count)})
            request_preemption(
                store,
                victim.run_id,
                preemption.for_run_id,
                reason=f"daily run {preemption.for_run_id} waits for the gpu pool",
            )
            instance.report_engine_event(
                f"Preempting this backfill run's GPU step for daily run {preemption.for_run_id} "
                f"(preemption {count} of at most {gpu_policy.max_preemptions_per_run}): the "
                "trainer checkpoints and stops; the step resumes when a slot is free.",
                victim,
            )
            context.log.info(f"preempted {victim.run_id} for {preemption.for_run_id}")
        return dg.SkipReason(
            "Preempted " + ", ".join(f"{p.victim_run_id} for {p.for_run_id}" for p in plan)
        )

    return sensor
