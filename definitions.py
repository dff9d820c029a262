"""The project's one Definitions object, built when Dagster loads the code location."""

import dagster as dg

from assets.daily_events import daily_events
from assets.features import feature_assets
from assets.model_checkpoint import model_checkpoint
from assets.training_dataset import training_dataset
from resources.factory import build_resources, current_deployment
from sensors.completeness import upstream_completeness_sensor
from sensors.freshness import daily_partitions_landed, freshness_job, freshness_schedule
from sensors.schedules import daily_features_job, daily_features_schedule


def build_definitions(deployment: str | None = None) -> dg.Definitions:
    deployment = deployment or current_deployment()
    # Production triggers run from the first deploy; a laptop starts with every trigger off.
    # The daily schedule is the fallback trigger and starts off everywhere.
    running = deployment == "prod"
    sensor_status = dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
    schedule_status = (
        dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    )
    return dg.Definitions(
        assets=[daily_events, *feature_assets, training_dataset, model_checkpoint],
        asset_checks=[daily_partitions_landed],
        jobs=[daily_features_job, freshness_job],
        schedules=[
            daily_features_schedule(dg.DefaultScheduleStatus.STOPPED),
            freshness_schedule(schedule_status),
        ],
        sensors=[upstream_completeness_sensor(sensor_status)],
        resources=build_resources(deployment),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
