"""Asset jobs: which assets (and checks) run together when a trigger fires."""

import dagster as dg

from assets.quality.deadline import daily_partitions_landed
from resources.registry.promotion_identity import STEP_LAUNCHER_RUN_TAGS

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


# define_asset_job's result type is not exported by Dagster: these two are not annotated.
def _daily_training_job(executor_def: dg.ExecutorDefinition | None = None, tags=None):
    return dg.define_asset_job(
        "daily_training_job",
        selection=dg.AssetSelection.assets(
            "training_dataset",
            "model_next_day_guard",
            "model_checkpoint",
            "model_evaluation",
            "model_promotion",
        ),
        description="Builds the day's approved training window, judges yesterday's promotion on "
        "the day's unseen examples (rolling it back if it is worse than the version it "
        "replaced), trains the day's model (warm start from production), evaluates it against "
        "the production model and, if it passes, promotes it by compare-and-swap.",
        executor_def=executor_def,
        tags=tags,
    )


# Local: every step in the run's process, like every other job (the definitions' executor).
daily_training_job = _daily_training_job()


def training_job(deployment: str):
    """The daily training job of a deployment. In production each step runs in its own pod
    (dagster-k8s's k8s_job_executor), so that only the steps that move the `production` alias
    (model_next_day_guard, model_promotion: their op tags) hold the promotion identity's
    Secret, and the dataset, trainer-launching and evaluation steps do not. Five pods a day
    cost a pod start and a code-location load each, once a day; backfills (the asset job) stay
    in one process. The run's own pod only launches the step Jobs: it runs as the step
    launcher's service account, the only one allowed to create Jobs in the release namespace."""
    if deployment != "prod":
        return daily_training_job
    # Imported only here: a laptop never loads the Kubernetes client.
    from dagster_k8s import k8s_job_executor

    return _daily_training_job(k8s_job_executor, STEP_LAUNCHER_RUN_TAGS)


pipeline_slo_job = dg.define_asset_job(
    "pipeline_slo_job",
    selection=dg.AssetSelection.assets("pipeline_slo"),
    description="Computes one day's pipeline SLOs from the run records and judges them; a breach "
    "alerts once.",
)
