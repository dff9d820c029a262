"""Asset jobs: which assets (and checks) run together when a trigger fires."""

import dagster as dg

from assets.quality.deadline import daily_partitions_landed

daily_features_job = dg.define_asset_job(
    "daily_features_job",
    # The deadline checks run on their own schedule, not inside the runs they watch.
    selection=dg.AssetSelection.groups("sources", "features")
    - dg.AssetSelection.checks(daily_partitions_landed),
    description="Snapshots and validates one day of events, then computes every feature table.",
)

freshness_job = dg.define_asset_job(
    "freshness_checks_job",
    selection=dg.AssetSelection.checks(daily_partitions_landed),
    description="Evaluates the daily-partition deadline checks.",
)
