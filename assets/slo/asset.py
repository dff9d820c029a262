"""`pipeline_slo`: one day's SLO numbers as metadata (plotted per day) and its SLO verdicts as
asset checks; a breach is announced through the Notifier once."""

import datetime as dt
import math

import dagster as dg

from assets.partitions import daily_partitions
from assets.slo.alerts import alert_once
from assets.slo.config import SloConfig
from assets.slo.metrics import METRICS, VERDICTS_KEY
from assets.slo.report import DayReport, compute_day
from assets.slo.verdicts import CHECK_DESCRIPTIONS, FAILED, WARN, Verdict, verdicts
from resources.notifier import Alert, Notifier
from resources.pricing import ComputePrices
from resources.registry.resource import ModelRegistryResource
from resources.storage.resource import ObjectStorage

ASSET = "pipeline_slo"


def _iso(timestamp: float | None) -> str:
    if timestamp is None:
        return "none"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds")


def _runs(report: DayReport) -> list[dict]:
    """Each daily run of the day with its numbers (one JSON entry: it does not crowd plots)."""
    rows = []
    for chain in report.chains:
        for attempt in chain.attempts:
            trainer = report.trainers.get(attempt.run_id)
            rows.append(
                {
                    "run_id": attempt.run_id,
                    "job": attempt.job,
                    "status": attempt.status,
                    "retry_of": None if attempt is chain.first else chain.first.run_id,
                    "requested_at": _iso(attempt.requested_at),
                    "request_source": attempt.request_source,
                    "enqueued_at": _iso(attempt.enqueued_at),
                    "dequeued_at": _iso(attempt.dequeued_at),
                    "started_at": _iso(attempt.started_at),
                    "ended_at": _iso(attempt.ended_at),
                    "trainer": None if trainer is None else vars(trainer),
                }
            )
    return rows


def _metadata(report: DayReport, results: list[Verdict], rates: dict) -> dict:
    numbers = report.numbers()
    metadata: dict = {m.key: dg.MetadataValue.float(numbers[m.key]) for m in METRICS}
    e2e = report.end_to_end
    production = report.production
    metadata |= {
        "end_to_end_outcome": e2e.outcome,
        "end_to_end_detail": e2e.detail,
        "data_complete_at": _iso(e2e.data_complete_at),
        "end_to_end_ended_at": _iso(e2e.ended_at),
        "daily_runs": dg.MetadataValue.int(sum(len(c.attempts) for c in report.chains)),
        "success_window": f"{report.success.succeeded}/{report.success.finished} finished "
        "daily runs succeeded",
        "production_version": (production.version if production else None) or "none",
        "rolled_back_version": report.rollback.version if report.rollback else "none",
        "rolled_back_by_run": report.rollback.run_id if report.rollback else "none",
        "as_of": _iso(report.as_of),
        "prices": dg.MetadataValue.json(rates),
        "runs": dg.MetadataValue.json(_runs(report)),
        VERDICTS_KEY: dg.MetadataValue.json({v.check: v.status for v in results}),
    }
    return metadata


def _check_result(verdict: Verdict) -> dg.AssetCheckResult:
    def num(value: float | None) -> float:
        return math.nan if value is None else float(value)

    return dg.AssetCheckResult(
        check_name=verdict.check,
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.WARN
        if verdict.status == WARN
        else dg.AssetCheckSeverity.ERROR,
        description=verdict.description,
        metadata={
            "observed_value": dg.MetadataValue.float(num(verdict.observed)),
            "threshold_value": dg.MetadataValue.float(float(verdict.threshold)),
            "run_id": verdict.run_id or "none",
        },
    )


@dg.asset(
    name=ASSET,
    description="How the daily pipeline met its SLOs on the day: schedule-to-start, duration, "
    "end-to-end time, success ratio, cost and the production model's age.",
    group_name="observability",
    partitions_def=daily_partitions,
    check_specs=[
        # Not blocking: nothing is downstream, and a breach must not fail the run that reports it.
        dg.AssetCheckSpec(name, asset=ASSET, description=description)
        for name, description in CHECK_DESCRIPTIONS.items()
    ],
    tags={"layer": "observability"},
)
def pipeline_slo(
    context: dg.AssetExecutionContext,
    config: SloConfig,
    storage: ObjectStorage,
    registry: ModelRegistryResource,
    notifier: Notifier,
    compute_prices: ComputePrices,
) -> dg.MaterializeResult:
    day = context.partition_key
    rates = compute_prices.rates()
    report = compute_day(context.instance, registry.open_registry(), rates, config, day)
    results = verdicts(report, config)
    store = storage.open_store()
    for verdict in results:
        if verdict.status != FAILED:
            continue
        sent = alert_once(
            store,
            notifier,
            day,
            verdict.check,
            Alert(
                kind="slo_breach",
                asset=ASSET,
                partition=day,
                gate=verdict.check,
                observed="none" if verdict.observed is None else f"{verdict.observed:.4g}",
                threshold=f"{verdict.threshold:g}",
                summary=verdict.description,
                run_id=verdict.run_id,
            ),
        )
        context.log.warning(
            f"SLO breach {verdict.check} on {day}: "
            + ("alerted" if sent else "already alerted, not sent again")
        )
    return dg.MaterializeResult(
        metadata=_metadata(report, results, vars(rates)),
        check_results=[_check_result(verdict) for verdict in results],
    )
