"""Compute day D's SLOs as soon as D's daily pipeline has nothing left to run.

Run-status sensors on the two daily jobs: day D's `pipeline_slo` is requested when D's daily
training run ends (success or failure), or when D's daily features run ends and no training
will follow (it failed, or the training trigger skips the day). A run that run retries will
re-execute requests nothing; its retry's end does. Why not a schedule: the daily run's end
moves with the upstream's arrival, so a fixed time either judges a day still running or pages
hours after a breach.
"""

import dagster as dg

from assets.jobs import daily_features_job, daily_training_job, pipeline_slo_job
from assets.partitions import training_partitions
from assets.slo.runs import FEATURES_JOB, PARTITION_TAG
from sensors.schedules import is_daily_run
from sensors.training_trigger import training_request

WILL_RETRY_TAG = "dagster/will_retry"


def slo_request(run: dg.DagsterRun, newest: str | None) -> dg.RunRequest | dg.SkipReason:
    """The decision, apart from the sensor machinery (so tests can read it directly)."""
    partition = run.tags.get(PARTITION_TAG)
    if not is_daily_run(run) or partition is None:
        return dg.SkipReason(f"Run {run.run_id} is not a daily run of one day: no SLO for it.")
    if run.status == dg.DagsterRunStatus.FAILURE and run.tags.get(WILL_RETRY_TAG) == "true":
        return dg.SkipReason(f"Run {run.run_id} will be retried: its retry's end counts.")
    if (
        run.job_name == FEATURES_JOB
        and run.status == dg.DagsterRunStatus.SUCCESS
        and isinstance(training_request(run, newest), dg.RunRequest)
    ):
        return dg.SkipReason(
            f"Run {run.run_id} approved {partition}; its daily training run follows, and the "
            "SLOs are computed when that ends."
        )
    return dg.RunRequest(
        run_key=f"pipeline-slo-{partition}-{run.run_id}",
        partition_key=partition,
        tags={"trigger": "daily-run-ended", "slo_for_run_id": run.run_id},
    )


def pipeline_slo_sensors(default_status: dg.DefaultSensorStatus) -> list[dg.SensorDefinition]:
    def build(status: dg.DagsterRunStatus) -> dg.SensorDefinition:
        @dg.run_status_sensor(
            name=f"pipeline_slo_after_{status.value.lower()}",
            run_status=status,
            monitored_jobs=[daily_features_job, daily_training_job],
            request_job=pipeline_slo_job,
            minimum_interval_seconds=30,
            default_status=default_status,
            description=f"Computes day D's SLOs when a daily run of D ends ({status.value}).",
        )
        def sensor(context: dg.RunStatusSensorContext):
            return slo_request(context.dagster_run, training_partitions.get_last_partition_key())

        return sensor

    return [build(dg.DagsterRunStatus.SUCCESS), build(dg.DagsterRunStatus.FAILURE)]
