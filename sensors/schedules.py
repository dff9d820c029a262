"""The daily job, its fallback schedule, and the queue priority every daily trigger carries."""

import dagster as dg

from sensors.freshness import daily_partitions_landed

# Daily runs outrank backfill runs in the queue. The tag lives on the schedule and the sensor,
# not on the job: backfills launched from the job would otherwise inherit the same priority.
DAILY_RUN_PRIORITY = "10"
DAILY_RUN_TAGS = {"dagster/priority": DAILY_RUN_PRIORITY}

daily_features_job = dg.define_asset_job(
    "daily_features_job",
    # The deadline checks run on their own schedule, not inside the runs they watch.
    selection=dg.AssetSelection.groups("sources", "features")
    - dg.AssetSelection.checks(daily_partitions_landed),
    description="Snapshots and validates one day of events, then computes every feature table.",
)


def daily_features_schedule(default_status: dg.DefaultScheduleStatus) -> dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(
        daily_features_job,
        name="daily_features_schedule",
        description=(
            "Fallback trigger: yesterday's partition at 06:00 UTC, for upstreams without a "
            "watermark. The completeness sensor is the primary trigger."
        ),
        hour_of_day=6,
        minute_of_hour=0,
        tags=DAILY_RUN_TAGS,
        default_status=default_status,
    )
