"""Asset jobs: which assets (and checks) run together when a trigger fires."""

import dagster as dg

from assets.quality.deadline import daily_partitions_landed
from resources.registry.promotion_identity import PROMOTION_RUN_TAGS

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

daily_training_job = dg.define_asset_job(
    "daily_training_job",
    selection=dg.AssetSelection.assets(
        "training_dataset",
        "model_next_day_guard",
        "model_checkpoint",
        "model_evaluation",
        "model_promotion",
    ),
    description="Builds the day's approved training window, judges yesterday's promotion on the "
    "day's unseen examples (rolling it back if it is worse than the version it replaced), "
    "trains the day's model (warm start from production), evaluates it against the production "
    "model and, if it passes, promotes it by compare-and-swap.",
    # Its last step promotes: only its runs (and the rollback job's) get the promotion identity.
    tags=PROMOTION_RUN_TAGS,
)

pipeline_slo_job = dg.define_asset_job(
    "pipeline_slo_job",
    selection=dg.AssetSelection.assets("pipeline_slo"),
    description="Computes one day's pipeline SLOs from the run records and judges them; a breach "
    "alerts once.",
)
