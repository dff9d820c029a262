"""Flag a daily partition that has not landed by its deadline.

Every day at FRESHNESS_DEADLINE, the newest partition that should exist by then (yesterday's)
must be materialized for every daily asset; otherwise the check fails with WARN severity,
naming the missing partition, so someone looks before the training SLA is missed. Inside a
run that materializes partitions (the UI adds an asset's checks to a manual materialization),
it judges the partitions that run was asked for, never a day nobody asked about: one
evaluation against each of those days (Dagster plans one per partition of the run, which the
UI would otherwise list as "Skipped"), then the run-level result over all of them.
`daily_partitions_landed` is the check over the project's FEATURE_TABLES;
`build_deadline_check(feature_tables)` builds it for any other declaration.
"""

import datetime as dt
from collections.abc import Mapping, Sequence

import dagster as dg

from assets.features.logic import FEATURE_TABLES, FeatureTable
from assets.partitions import daily_partitions
from assets.sources.daily_events import ASSET as EVENTS_ASSET

FRESHNESS_DEADLINE = dt.time(9, 0)  # UTC: three hours after the fallback schedule
CHECK_NAME = "daily_partition_landed"


def expected_partition(now: dt.datetime, deadline: dt.time = FRESHNESS_DEADLINE) -> str:
    """The newest partition that must have landed at `now`: yesterday's once today's deadline
    has passed, otherwise the day before yesterday's."""
    today = now.astimezone(dt.UTC).date()
    days_back = 1 if now.astimezone(dt.UTC).time() >= deadline else 2
    return (today - dt.timedelta(days=days_back)).isoformat()


def daily_assets(feature_tables: Sequence[FeatureTable]) -> tuple[str, ...]:
    """The daily assets whose partitions must land: the source, then each feature table."""
    return (EVENTS_ASSET, *(table.name for table in feature_tables))


# The project's daily assets (its FEATURE_TABLES).
DAILY_ASSETS = daily_assets(FEATURE_TABLES)


def build_deadline_check(feature_tables: Sequence[FeatureTable]) -> dg.AssetChecksDefinition:
    """The deadline check over the source and these feature tables (the project's:
    `daily_partitions_landed`)."""

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                CHECK_NAME,
                asset=asset,
                description=f"Yesterday's partition landed by {FRESHNESS_DEADLINE:%H:%M} UTC.",
            )
            for asset in daily_assets(feature_tables)
        ],
        can_subset=True,
        name="daily_partitions_landed",
    )
    def daily_partitions_landed(context: dg.AssetCheckExecutionContext):
        asked = _partitions_of_the_run(context.run.tags)
        if asked:
            # Run next to a materialization the user asked for (the UI adds an asset's checks to
            # it): judge the days that run was about, not the deadline's day.
            partitions, why = asked, "asked for by this run"
        else:
            # Judged as of when the run was requested (the schedule's tick, or a click in the UI):
            # a run that waited in the queue past midnight still checks the day it was asked about.
            requested_at = context.instance.get_run_record_by_id(
                context.run.run_id
            ).create_timestamp
            partitions, why = [expected_partition(requested_at)], "due by the deadline"
        for check_key in context.selected_asset_check_keys:
            missing = [
                partition
                for partition in partitions
                if not context.instance.fetch_materializations(
                    dg.AssetRecordsFilter(
                        asset_key=check_key.asset_key, asset_partitions=[partition]
                    ),
                    limit=1,
                ).records
            ]
            if asked:
                for partition in partitions:
                    context.op_execution_context.log_event(
                        dg.AssetCheckEvaluation(
                            asset_key=check_key.asset_key,
                            check_name=CHECK_NAME,
                            passed=partition not in missing,
                            partition=partition,
                            severity=dg.AssetCheckSeverity.WARN,
                            description=_describe_day(partition, partition not in missing, why),
                            metadata={"expected_partition": partition, "partition": partition},
                        )
                    )
            yield dg.AssetCheckResult(
                asset_key=check_key.asset_key,
                check_name=CHECK_NAME,
                passed=not missing,
                severity=dg.AssetCheckSeverity.WARN,
                description=_describe(partitions, missing, why),
                metadata={"expected_partition": ", ".join(partitions), "missing": len(missing)},
            )

    return daily_partitions_landed


daily_partitions_landed = build_deadline_check(FEATURE_TABLES)


def _partitions_of_the_run(tags: Mapping[str, str]) -> list[str]:
    """The daily partitions a run materializes (one, or a backfill batch's range); [] for the
    deadline job's own runs, which target no partition."""
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    first = tags.get("dagster/asset_partition_range_start")
    last = tags.get("dagster/asset_partition_range_end")
    if first and last:
        return daily_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))
    return []


def _describe(partitions: list[str], missing: list[str], why: str) -> str:
    if not missing:
        return f"partition(s) {', '.join(partitions)} ({why}) landed"
    if why == "due by the deadline":
        return (
            f"partition {missing[0]} has not landed by its {FRESHNESS_DEADLINE:%H:%M} UTC "
            "deadline: check the completeness sensor's skip reasons and the run queue."
        )
    return (
        f"partition(s) {', '.join(missing)} ({why}) did not land: the run's step for this asset "
        "failed or its gates blocked the day; see the run's step failures."
    )


def _describe_day(partition: str, landed: bool, why: str) -> str:
    """One day's verdict, starting with the day as the gates' do."""
    if landed:
        return f"{partition}: landed ({why})"
    return f"{partition}: " + _describe([partition], [partition], why)
