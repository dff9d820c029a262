"""Flag a daily partition that has not landed by its deadline.

Every day at FRESHNESS_DEADLINE, the newest partition that should exist by then (yesterday's)
must be materialized for every daily asset; otherwise the check fails with WARN severity,
naming the missing partition, so someone looks before the training SLA is missed.
"""

import datetime as dt

import dagster as dg

from assets.features.logic import FEATURE_TABLES
from assets.sources.daily_events import ASSET as EVENTS_ASSET

FRESHNESS_DEADLINE = dt.time(9, 0)  # UTC: three hours after the fallback schedule
DAILY_ASSETS = (EVENTS_ASSET, *(table.name for table in FEATURE_TABLES))
CHECK_NAME = "daily_partition_landed"


def expected_partition(now: dt.datetime, deadline: dt.time = FRESHNESS_DEADLINE) -> str:
    """The newest partition that must have landed at `now`: yesterday's once today's deadline
    has passed, otherwise the day before yesterday's."""
    today = now.astimezone(dt.UTC).date()
    days_back = 1 if now.astimezone(dt.UTC).time() >= deadline else 2
    return (today - dt.timedelta(days=days_back)).isoformat()


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset=asset,
            description=f"Yesterday's partition landed by {FRESHNESS_DEADLINE:%H:%M} UTC.",
        )
        for asset in DAILY_ASSETS
    ],
    can_subset=True,
)
def daily_partitions_landed(context: dg.AssetCheckExecutionContext):
    # Judged as of when the run was requested (the schedule's tick, or a click in the UI): a run
    # that waited in the queue past midnight still checks the day it was asked about.
    requested_at = context.instance.get_run_record_by_id(context.run.run_id).create_timestamp
    partition = expected_partition(requested_at)
    for check_key in context.selected_asset_check_keys:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=check_key.asset_key, asset_partitions=[partition]),
            limit=1,
        ).records
        yield dg.AssetCheckResult(
            asset_key=check_key.asset_key,
            check_name=CHECK_NAME,
            passed=bool(records),
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                f"partition {partition} landed"
                if records
                else f"partition {partition} has not landed by its "
                f"{FRESHNESS_DEADLINE:%H:%M} UTC deadline: check the completeness sensor's "
                "skip reasons and the run queue."
            ),
            metadata={"expected_partition": partition},
        )
