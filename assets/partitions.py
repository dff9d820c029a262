"""The daily partitioning every asset shares, and how backfills batch it."""

import datetime as dt
import warnings

import dagster as dg

# One partition per UTC day; the newest partition is yesterday (a day is complete once over).
daily_partitions = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone="UTC")

# How many days one backfill run of the source and feature assets computes: a 365-day
# backfill becomes 13 runs, not 365.
FEATURE_PARTITIONS_PER_RUN = 30

# Days of training examples one model trains on (the day itself and the days before it).
TRAINING_WINDOW_DAYS = 7

# Training starts once a full window of examples can exist.
training_partitions = dg.DailyPartitionsDefinition(
    start_date=(
        dt.date.fromisoformat(daily_partitions.get_first_partition_key())
        + dt.timedelta(days=TRAINING_WINDOW_DAYS - 1)
    ).isoformat(),
    timezone="UTC",
)

# The training window as Dagster's lineage sees it (training_dataset's dependency on
# training_examples) and as the asset reads it: one definition for both.
TRAINING_WINDOW = dg.TimeWindowPartitionMapping(
    start_offset=-(TRAINING_WINDOW_DAYS - 1), end_offset=0
)

# BackfillPolicy is beta in dagster 1.13; batching backfills is a deliberate choice of this
# project, so only that one warning is silenced.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy")


def partition_range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run cover [first, last], as a batched backfill run does."""
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a daily partition in UTC."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def training_window(partition: str) -> list[str]:
    """The daily partitions a training partition reads, oldest first (TRAINING_WINDOW)."""
    mapped = TRAINING_WINDOW.get_upstream_mapped_partitions_result_for_partitions(
        training_partitions.subset_with_partition_keys([partition]),
        training_partitions,
        daily_partitions,
    )
    return sorted(mapped.partitions_subset.get_partition_keys())
