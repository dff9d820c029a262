"""The schedules, and the queue priority every daily trigger carries."""

import dagster as dg

from assets.jobs import daily_features_job, freshness_job
from assets.quality.deadline import FRESHNESS_DEADLINE

# Daily runs outrank backfill runs in the queue. The tag lives on the schedule and the sensor,
# not on the job: backfills launched from the job would otherwise inherit the same priority.
PRIORITY_TAG = "dagster/priority"
BACKFILL_TAG = "dagster/backfill"
DAILY_RUN_PRIORITY = "10"
DAILY_RUN_TAGS = {PRIORITY_TAG: DAILY_RUN_PRIORITY}


def is_daily_run(run: dg.DagsterRun) -> bool:
    """A run a daily trigger launched: the daily priority and no backfill (a manual re-run from
    the launchpad has no priority tag; an asset backfill's runs carry only the backfill tag)."""
    return BACKFILL_TAG not in run.tags and run.tags.get(PRIORITY_TAG) == DAILY_RUN_PRIORITY


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


def freshness_schedule(default_status: dg.DefaultScheduleStatus) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="freshness_checks_schedule",
        job=freshness_job,
        cron_schedule=f"{FRESHNESS_DEADLINE.minute + 5} {FRESHNESS_DEADLINE.hour} * * *",
        execution_timezone="UTC",
        default_status=default_status,
    )
