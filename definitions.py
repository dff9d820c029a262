"""The project's one Definitions object, built when Dagster loads the code location."""

import dagster as dg

from assets.features import feature_assets
from resources.factory import build_resources, current_deployment
from sensors.schedules import daily_features_job, daily_features_schedule


def build_definitions(deployment: str | None = None) -> dg.Definitions:
    deployment = deployment or current_deployment()
    # Production schedules run from the first deploy; a laptop starts with them off.
    schedule_status = (
        dg.DefaultScheduleStatus.RUNNING
        if deployment == "prod"
        else dg.DefaultScheduleStatus.STOPPED
    )
    return dg.Definitions(
        assets=feature_assets,
        jobs=[daily_features_job],
        schedules=[daily_features_schedule(schedule_status)],
        resources=build_resources(deployment),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
