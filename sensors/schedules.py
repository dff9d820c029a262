"""The daily schedule: materialize yesterday's feature partitions every night."""

import dagster as dg

# Scheduled runs outrank backfill runs in the queue. The tag lives on the schedule, not the job:
# backfills launched from the job would otherwise inherit the same priority.
DAILY_RUN_PRIORITY = "10"

daily_features_job = dg.define_asset_job(
    "daily_features_job",
    selection=dg.AssetSelection.groups("features"),
    description="Computes every feature table for one day.",
)


def daily_features_schedule(default_status: dg.DefaultScheduleStatus) -> dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(
        daily_features_job,
        name="daily_features_schedule",
        description="Nightly run of yesterday's feature partitions, ahead of any backfill.",
        hour_of_day=1,
        minute_of_hour=0,
        tags={"dagster/priority": DAILY_RUN_PRIORITY},
        default_status=default_status,
    )
