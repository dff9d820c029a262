"""The SLO numbers of runs and days, as pure functions of the chains (no Dagster, no clock).

- schedule-to-start: the request (schedule due time / sensor tick) to the first attempt's
  RUN_START; its queue part: RUN_ENQUEUED to the queue handing the run over (RUN_STARTING);
- duration: the first attempt's start to the last attempt's end (retries included);
- end-to-end: the day's data complete (the request of its first features run) to the model
  promoted, or to the end of the run whose verdict stopped the day;
- success ratio: succeeded / finished chains of the trailing days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from assets.slo.runs import FEATURES_JOB, TRAINING_JOB, Chain

PROMOTED, STOPPED, RUNNING, NOT_TRAINED, NO_RUNS = (
    "promoted",
    "stopped",
    "in progress",
    "not trained",
    "no daily runs",
)


def schedule_to_start(chain: Chain, now: float) -> float | None:
    """Seconds from the request to RUN_START; a run still waiting counts its wait so far."""
    first = chain.first
    if first.started_at is not None:
        return first.started_at - first.requested_at
    if chain.finished:  # canceled or failed before it ever started
        return None
    return now - first.requested_at


def queue_wait(chain: Chain) -> float | None:
    first = chain.first
    if first.enqueued_at is None or first.dequeued_at is None:
        return None  # not launched through the run queue (e.g. executed in process)
    return first.dequeued_at - first.enqueued_at


def duration(chain: Chain) -> float | None:
    if not chain.finished or chain.first.started_at is None or chain.last.ended_at is None:
        return None
    return chain.last.ended_at - chain.first.started_at


@dataclass(frozen=True)
class EndToEnd:
    outcome: str
    seconds: float | None
    data_complete_at: float | None
    ended_at: float | None
    run_id: str | None  # the run that promoted, or whose verdict stopped the day
    detail: str


def end_to_end(chains: list[Chain], promoted_at: dict[str, float]) -> EndToEnd:
    """The day from its first features request to the promotion (`promoted_at`: run id ->
    timestamp of its model_promotion materialization) or to the run that stopped it."""
    features = [c for c in chains if c.job == FEATURES_JOB]
    training = [c for c in chains if c.job == TRAINING_JOB]
    if not chains:
        return EndToEnd(NO_RUNS, None, None, None, None, "no daily run for this day")
    start = features[0].first.requested_at if features else None
    for chain in training:
        for attempt in chain.attempts:
            if attempt.run_id in promoted_at:
                end = promoted_at[attempt.run_id]
                return EndToEnd(
                    PROMOTED,
                    None if start is None else end - start,
                    start,
                    end,
                    attempt.run_id,
                    f"model promoted by {attempt.job} run {attempt.run_id}",
                )
    running = [c for c in chains if not c.finished]
    if running:
        return EndToEnd(
            RUNNING, None, start, None, running[-1].last.run_id, "a daily run is not finished"
        )
    latest = max(chains, key=lambda c: c.last.created_at)
    if not latest.succeeded:
        end = latest.last.ended_at
        return EndToEnd(
            STOPPED,
            None if start is None or end is None else end - start,
            start,
            end,
            latest.last.run_id,
            f"stopped: {latest.job} run {latest.last.run_id} ended {latest.last.status}",
        )
    if latest.job == FEATURES_JOB:
        return EndToEnd(
            NOT_TRAINED, None, start, None, None, "features approved; no daily training run"
        )
    return EndToEnd(
        STOPPED,
        None,
        start,
        latest.last.ended_at,
        latest.last.run_id,
        f"{latest.job} run {latest.last.run_id} succeeded without promoting a model",
    )


@dataclass(frozen=True)
class SuccessRatio:
    day: str
    succeeded: int
    finished: int
    failed_run_ids: tuple[str, ...]

    @property
    def ratio(self) -> float | None:
        return self.succeeded / self.finished if self.finished else None


def trailing_days(day: str, days: int) -> list[str]:
    """`day` and the `days - 1` days before it, oldest first."""
    last = dt.date.fromisoformat(day)
    return [(last - dt.timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]


def success_ratio(day: str, window_days: int, chains: dict[str, list[Chain]]) -> SuccessRatio:
    """Finished chains of [day - window + 1, day]; a chain counts by its last attempt."""
    finished = [
        chain
        for window_day in trailing_days(day, window_days)
        for chain in chains.get(window_day, [])
        if chain.finished
    ]
    failed = tuple(chain.last.run_id for chain in finished if not chain.succeeded)
    return SuccessRatio(day, len(finished) - len(failed), len(finished), failed)


def below_for_consecutive_days(ratios: list[SuccessRatio], minimum: float) -> bool:
    """True when every one of the days has a ratio and each is below `minimum`."""
    return bool(ratios) and all(r.ratio is not None and r.ratio < minimum for r in ratios)
