"""Which runs are the daily pipeline's, read from the instance's run records and run events.

A daily run is a run of `daily_features_job` or `daily_training_job` for one day, carrying the
daily priority and no backfill tag (what the completeness sensor, the schedule and the training
trigger launch). A run and the automatic retries of it form one `Chain`: one request, one
outcome (its last attempt's).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg

from assets.slo.tags import request_time
from sensors.schedules import DAILY_RUN_PRIORITY, PRIORITY_TAG, is_daily_run

FEATURES_JOB = "daily_features_job"
TRAINING_JOB = "daily_training_job"
DAILY_JOBS = (FEATURES_JOB, TRAINING_JOB)
STAGE_OF_JOB = {FEATURES_JOB: "features", TRAINING_JOB: "training"}

PARTITION_TAG = "dagster/partition"
ROOT_RUN_TAG = "dagster/root_run_id"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
# Status-change events read per page; a day's window holds a few runs per day.
_PAGE = 500


@dataclass(frozen=True)
class Attempt:
    """One run, as the SLOs need it (epoch seconds; None: not reached)."""

    run_id: str
    job: str
    partition: str
    status: str
    requested_at: float
    request_source: str
    created_at: float
    enqueued_at: float | None
    dequeued_at: float | None
    started_at: float | None
    ended_at: float | None
    root_run_id: str


@dataclass(frozen=True)
class Chain:
    """A daily run and its automatic retries, oldest first."""

    attempts: tuple[Attempt, ...]

    @property
    def first(self) -> Attempt:
        return self.attempts[0]

    @property
    def last(self) -> Attempt:
        return self.attempts[-1]

    @property
    def job(self) -> str:
        return self.first.job

    @property
    def stage(self) -> str:
        return STAGE_OF_JOB[self.first.job]

    @property
    def partition(self) -> str:
        return self.first.partition

    @property
    def finished(self) -> bool:
        return self.last.status in FINISHED

    @property
    def succeeded(self) -> bool:
        return self.last.status == "SUCCESS"


def daily_run_records(instance: dg.DagsterInstance, day: str) -> list[dg.RunRecord]:
    records = []
    for job in DAILY_JOBS:
        records += instance.get_run_records(
            filters=dg.RunsFilter(
                job_name=job, tags={PARTITION_TAG: day, PRIORITY_TAG: DAILY_RUN_PRIORITY}
            )
        )
    return [record for record in records if is_daily_run(record.dagster_run)]


def _status_times(
    instance: dg.DagsterInstance, event_type: dg.DagsterEventType, after: float, before: float
) -> dict[str, float]:
    """The first `event_type` event of each daily run in [after, before]."""
    times: dict[str, float] = {}
    cursor = None
    while True:
        page = instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(
                event_type=event_type,
                after_timestamp=after,
                before_timestamp=before,
                job_names=list(DAILY_JOBS),
            ),
            limit=_PAGE,
            cursor=cursor,
            ascending=True,
        )
        for record in page.records:
            times.setdefault(record.run_id, record.timestamp)
        if not page.has_more:
            return times
        cursor = page.cursor


def _attempts(instance: dg.DagsterInstance, records: list[dg.RunRecord]) -> list[Attempt]:
    if not records:
        return []
    created = [record.create_timestamp.timestamp() for record in records]
    # Dagster 1.13 writes no RUN_DEQUEUED event: the queue hands a run to the launcher with
    # RUN_STARTING, so that is where its queue wait ends.
    after = min(created) - 1
    before = max(record.update_timestamp.timestamp() for record in records) + 1
    enqueued = _status_times(instance, dg.DagsterEventType.RUN_ENQUEUED, after, before)
    dequeued = _status_times(instance, dg.DagsterEventType.RUN_STARTING, after, before)
    attempts = []
    for record, created_at in zip(records, created, strict=True):
        run = record.dagster_run
        requested, source = request_time(dict(run.tags), created_at)
        attempts.append(
            Attempt(
                run_id=run.run_id,
                job=run.job_name,
                partition=run.tags[PARTITION_TAG],
                status=run.status.value,
                requested_at=requested,
                request_source=source,
                created_at=created_at,
                enqueued_at=enqueued.get(run.run_id),
                dequeued_at=dequeued.get(run.run_id),
                started_at=record.start_time,
                ended_at=record.end_time,
                root_run_id=run.tags.get(ROOT_RUN_TAG, run.run_id),
            )
        )
    return attempts


def chains_of(attempts: Iterable[Attempt]) -> list[Chain]:
    """Group attempts by the run they retry, oldest request first."""
    grouped: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        grouped[attempt.root_run_id].append(attempt)
    chains = [Chain(tuple(sorted(group, key=lambda a: a.created_at))) for group in grouped.values()]
    return sorted(chains, key=lambda chain: chain.first.created_at)


def daily_chains(instance: dg.DagsterInstance, days: Iterable[str]) -> dict[str, list[Chain]]:
    """Every day's daily chains (a day without any maps to an empty list)."""
    wanted = list(days)
    records = [record for day in wanted for record in daily_run_records(instance, day)]
    by_day: dict[str, list[Attempt]] = {day: [] for day in wanted}
    for attempt in _attempts(instance, records):
        by_day[attempt.partition].append(attempt)
    return {day: chains_of(attempts) for day, attempts in by_day.items()}
