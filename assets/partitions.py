"""The daily partitioning every feature and training asset shares."""

import dagster as dg

# One partition per UTC day; the newest partition is yesterday (a day is complete once over).
daily_partitions = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone="UTC")

# How many days one backfill run computes: a 365-day backfill becomes 13 runs, not 365.
FEATURE_PARTITIONS_PER_RUN = 30
