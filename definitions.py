"""The project's one Definitions object, built when Dagster loads the code location.

Read it as the table of contents: each line names a capability and the folder it lives in.
"""

import dagster as dg

from assets.features.assets import feature_assets
from assets.guard.asset import model_next_day_guard
from assets.jobs import daily_features_job, freshness_job, pipeline_slo_job, training_job
from assets.model.evaluation import model_evaluation
from assets.model.model_checkpoint import model_checkpoint
from assets.model.training_dataset import training_dataset
from assets.quality.deadline import daily_partitions_landed
from assets.registry.promotion import registry_assets, rollback_model_job
from assets.slo.asset import pipeline_slo
from assets.sources.daily_events import daily_events
from resources.factory import build_resources, current_deployment
from sensors.completeness import upstream_completeness_sensor
from sensors.gpu_preemption import gpu_preemption_sensor
from sensors.run_failure import run_failure_alert_sensor
from sensors.run_health import dead_run_sensor
from sensors.schedules import daily_features_schedule, freshness_schedule
from sensors.slo_trigger import pipeline_slo_sensors
from sensors.training_trigger import daily_training_sensor


def build_definitions(deployment: str | None = None) -> dg.Definitions:
    deployment = deployment or current_deployment()
    # Production triggers run from the first deploy; a laptop starts with every trigger off.
    # The daily schedule is the fallback trigger and starts off everywhere.
    running = deployment == "prod"
    # In production its steps run in pods of their own (assets/jobs.py: the promotion Secret).
    daily_training_job = training_job(deployment)
    sensor_status = dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
    schedule_status = (
        dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    )
    return dg.Definitions(
        # assets/sources, assets/features, assets/model
        assets=[
            daily_events,
            *feature_assets,
            training_dataset,
            # assets/guard: yesterday's promotion judged on today's unseen rows, rolled back
            model_next_day_guard,
            model_checkpoint,
            model_evaluation,
            # assets/registry: promotion by compare-and-swap, the production version
            *registry_assets,
            # assets/slo: the pipeline's SLOs per day, from the run records; checks = verdicts
            pipeline_slo,
        ],
        # assets/quality: the deadline check (the gates are declared by each asset)
        asset_checks=[daily_partitions_landed],
        # assets/jobs.py
        jobs=[
            daily_features_job,
            daily_training_job,
            freshness_job,
            rollback_model_job,
            pipeline_slo_job,
        ],
        # sensors/
        schedules=[
            daily_features_schedule(dg.DefaultScheduleStatus.STOPPED),
            freshness_schedule(schedule_status),
        ],
        sensors=[
            upstream_completeness_sensor(sensor_status),
            daily_training_sensor(sensor_status, daily_training_job),
            *pipeline_slo_sensors(sensor_status),
            # Guards that launch nothing, so they run from the start everywhere: the daily
            # run takes a backfill's GPU; on a laptop, dead run workers give their slots back
            # (on Kubernetes the run launcher's health check does that).
            gpu_preemption_sensor(dg.DefaultSensorStatus.RUNNING),
            # A failed run that will not be retried alerts, from here only.
            run_failure_alert_sensor(dg.DefaultSensorStatus.RUNNING),
            *([dead_run_sensor(dg.DefaultSensorStatus.RUNNING)] if deployment == "local" else []),
        ],
        # resources/factory.py: local (SQLite + directory) or prod (Postgres + S3 + GPU pods)
        resources=build_resources(deployment),
        # Every step of a run in the run worker's process. The steps are short Python (a
        # batch of days of pyarrow) or a Pipes client waiting on its trainer process or pod, so
        # a process per step (the default with several steps) only adds an interpreter start and
        # a code location load, about 2 s each, to every step of every backfill run. Pools are
        # still claimed per step (op granularity), and a killed run worker is still one pid.
        # The one exception: production's daily training job (a pod per step, assets/jobs.py).
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
