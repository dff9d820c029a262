"""One day's SLO numbers, computed from the instance's run records, run events and
materializations, and from the registry's alias history (no Dagster context: the asset and the
tests call the same function)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import dagster as dg

from assets.slo import measures
from assets.slo.config import SloConfig
from assets.slo.cost import Trainer, chain_cost, trainers
from assets.slo.metrics import STAGES
from assets.slo.production_age import ProductionAt, production_at
from assets.slo.rollback_time import Rollback, rollback_of_previous_day
from assets.slo.runs import TRAINING_JOB, Chain, daily_chains
from resources.pricing import Rates
from resources.registry.registry import ModelRegistry, RegistryError

PROMOTION_ASSET = "model_promotion"


@dataclass(frozen=True)
class StageNumbers:
    """The latest chain of one stage of the day (None: the stage has not run)."""

    chain: Chain | None
    schedule_to_start: float | None
    queue_wait: float | None
    duration: float | None
    success_ratio: float | None
    cost_usd: float


@dataclass(frozen=True)
class DayReport:
    day: str
    as_of: float  # the end of the day's last daily run (now while one is still running)
    chains: list[Chain]
    stages: dict[str, StageNumbers]
    end_to_end: measures.EndToEnd
    ratios: list[measures.SuccessRatio]  # the breach window's days, oldest first; last = day
    training_waits: list[tuple[Chain, float]]  # each training chain and its schedule-to-start
    cost_usd: float
    chain_costs: dict[str, float]  # root run id -> USD
    trainers: dict[str, Trainer]
    production: ProductionAt | None
    production_error: str | None
    rollback: Rollback | None = None  # the day before's model, rolled back (the guard's)

    @property
    def success(self) -> measures.SuccessRatio:
        return self.ratios[-1]

    def numbers(self) -> dict[str, float]:
        """Every metric of `assets.slo.metrics.METRICS` by key (NaN where there is none)."""

        def num(value: float | None) -> float:
            return math.nan if value is None else float(value)

        values = {}
        for stage, numbers in self.stages.items():
            values[f"{stage}_schedule_to_start_seconds"] = num(numbers.schedule_to_start)
            values[f"{stage}_queue_wait_seconds"] = num(numbers.queue_wait)
            values[f"{stage}_duration_seconds"] = num(numbers.duration)
            values[f"{stage}_success_ratio"] = num(numbers.success_ratio)
            values[f"{stage}_cost_usd"] = num(numbers.cost_usd)
        values["end_to_end_seconds"] = num(self.end_to_end.seconds)
        values["success_ratio"] = num(self.success.ratio)
        values["cost_usd"] = float(self.cost_usd)
        age = self.production.age_days(self.day) if self.production else None
        values["production_model_age_days"] = num(age)
        values["bad_promotion_to_rollback_seconds"] = num(
            self.rollback.seconds if self.rollback else None
        )
        return values


def promotion_times(instance: dg.DagsterInstance, day: str) -> dict[str, float]:
    """Run id -> when it materialized model_promotion for `day` (the model promoted)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(PROMOTION_ASSET), asset_partitions=[day]),
        limit=100,
    ).records
    times: dict[str, float] = {}
    for record in records:
        times[record.run_id] = min(record.timestamp, times.get(record.run_id, math.inf))
    return times


def _stage(
    chains: list[Chain], stage: str, found: dict[str, Trainer], rates: Rates, now: float
) -> StageNumbers:
    mine = [c for c in chains if c.stage == stage]
    if not mine:
        return StageNumbers(None, None, None, None, None, 0.0)
    latest = mine[-1]
    finished = [c for c in mine if c.finished]
    return StageNumbers(
        chain=latest,
        schedule_to_start=measures.schedule_to_start(latest, now),
        queue_wait=measures.queue_wait(latest),
        duration=measures.duration(latest),
        success_ratio=(sum(c.succeeded for c in finished) / len(finished) if finished else None),
        cost_usd=sum(chain_cost(c, found, rates) for c in mine),
    )


def compute_day(
    instance: dg.DagsterInstance,
    registry: ModelRegistry,
    rates: Rates,
    config: SloConfig,
    day: str,
    now: float | None = None,
) -> DayReport:
    now = dt.datetime.now(dt.UTC).timestamp() if now is None else now
    # The breach window's days, each with its own trailing success window.
    ratio_days = measures.trailing_days(day, config.breach_days)
    needed = measures.trailing_days(day, config.breach_days + config.success_window_days - 1)
    by_day = daily_chains(instance, needed)
    chains = by_day[day]
    found = trainers(instance, day)
    stages = {stage: _stage(chains, stage, found, rates, now) for stage in STAGES}
    ends = [c.last.ended_at for c in chains if c.finished and c.last.ended_at is not None]
    as_of = max(ends) if chains and all(c.finished for c in chains) and ends else now
    production, error, rollback = None, None, None
    try:
        production = production_at(registry, as_of)
        rollback = rollback_of_previous_day(registry, day)
    except RegistryError as err:
        error = str(err)
    waits = [
        (chain, wait)
        for chain in chains
        if chain.job == TRAINING_JOB
        and (wait := measures.schedule_to_start(chain, now)) is not None
    ]
    costs = {c.first.root_run_id: chain_cost(c, found, rates) for c in chains}
    return DayReport(
        day=day,
        as_of=as_of,
        chains=chains,
        stages=stages,
        end_to_end=measures.end_to_end(chains, promotion_times(instance, day)),
        ratios=[
            measures.success_ratio(ratio_day, config.success_window_days, by_day)
            for ratio_day in ratio_days
        ],
        training_waits=waits,
        cost_usd=sum(costs.values()),
        chain_costs=costs,
        trainers=found,
        production=production,
        production_error=error,
        rollback=rollback,
    )
