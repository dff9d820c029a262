"""Request a day's run only once the upstream watermark covers the whole day.

The cursor holds the last day requested, so each day is requested exactly once; a day whose
data is still arriving is skipped with a reason that names what is missing.
"""

import datetime as dt

import dagster as dg

from assets.jobs import daily_features_job
from assets.partitions import daily_partitions, day_bounds
from assets.slo.tags import requested_at_tags
from contract.source import SOURCE, SourceContract
from resources.warehouse.resource import Warehouse
from sensors.schedules import DAILY_RUN_TAGS

# After an outage the sensor catches up at most this many days; older gaps are a backfill's job.
MAX_CATCH_UP_DAYS = 7


def _days_to_consider(cursor: str | None, last_partition: dt.date) -> list[dt.date]:
    # No cursor yet arrives as None from the daemon and as "" from the UI's tick preview.
    first = last_partition if not cursor else dt.date.fromisoformat(cursor) + dt.timedelta(1)
    first = max(first, last_partition - dt.timedelta(days=MAX_CATCH_UP_DAYS - 1))
    return [first + dt.timedelta(days=n) for n in range((last_partition - first).days + 1)]


def upstream_completeness_sensor(
    default_status: dg.DefaultSensorStatus, contract: SourceContract = SOURCE
) -> dg.SensorDefinition:
    """The sensor for the source table `contract` declares (its watermark row)."""

    @dg.sensor(
        name="upstream_completeness_sensor",
        job=daily_features_job,
        minimum_interval_seconds=300,
        default_status=default_status,
        description="Requests day D's run once the warehouse watermark covers all of D.",
    )
    def sensor(
        context: dg.SensorEvaluationContext, warehouse: Warehouse
    ) -> dg.SensorResult | dg.SkipReason:
        last_partition = dt.date.fromisoformat(daily_partitions.get_last_partition_key())
        candidates = _days_to_consider(context.cursor, last_partition)
        if not candidates:
            return dg.SkipReason(f"Every finished day through {context.cursor} was requested.")
        loaded_through = warehouse.read_watermark(contract)
        complete = [
            day
            for day in candidates
            if loaded_through is not None and loaded_through >= day_bounds(day)[1]
        ]
        if not complete:
            waiting_for = candidates[0]
            return dg.SkipReason(
                f"Waiting for upstream: {waiting_for} needs the {contract.table} watermark at "
                f"{day_bounds(waiting_for)[1].isoformat()}, it is at "
                f"{loaded_through.isoformat() if loaded_through else 'nothing loaded yet'}."
            )
        requested = requested_at_tags()
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"upstream-complete-{day.isoformat()}",
                    partition_key=day.isoformat(),
                    # The tick's time: the day's "data complete" and where its wait starts.
                    tags={**DAILY_RUN_TAGS, "trigger": "upstream-complete", **requested},
                )
                for day in complete
            ],
            cursor=complete[-1].isoformat(),
        )

    return sensor
