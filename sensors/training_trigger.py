"""Train the newest day as soon as its features are approved, never for a backfill.

A run-status sensor on `daily_features_job`'s successful runs: the daily run that approved
day D's events and features requests `daily_training_job` for D at daily priority. It requests
nothing when the run was part of a backfill, did not carry the daily priority (a manual or
re-run from the launchpad), covered a range of days, or D is not the newest day. A blocked day
never triggers anything: its features run fails (the gate alert has already gone out once per
blocked gate), and this sensor only sees successes.
"""

import dagster as dg

from assets.jobs import daily_features_job, daily_training_job
from assets.partitions import training_partitions
from assets.slo.tags import requested_at_tags
from sensors.schedules import BACKFILL_TAG, DAILY_RUN_PRIORITY, DAILY_RUN_TAGS, PRIORITY_TAG

PARTITION_TAG = "dagster/partition"


def training_request(run: dg.DagsterRun, newest: str | None) -> dg.RunRequest | dg.SkipReason:
    """The decision, apart from the sensor machinery (so tests can read it directly)."""
    partition = run.tags.get(PARTITION_TAG)
    if BACKFILL_TAG in run.tags:
        return dg.SkipReason(
            f"Run {run.run_id} is part of backfill {run.tags[BACKFILL_TAG]}: backfills never "
            "trigger training (backfill training_dataset/model_checkpoint explicitly)."
        )
    if run.tags.get(PRIORITY_TAG) != DAILY_RUN_PRIORITY:
        return dg.SkipReason(
            f"Run {run.run_id} did not carry the daily priority tag: only the daily trigger's "
            "runs start training."
        )
    if partition is None:
        return dg.SkipReason(f"Run {run.run_id} covered a range of days, not one daily partition.")
    if partition != newest:
        return dg.SkipReason(
            f"Run {run.run_id} approved {partition}, but the newest day is {newest}: only the "
            "newest day trains automatically."
        )
    return dg.RunRequest(
        run_key=f"daily-training-{partition}",
        partition_key=partition,
        tags={
            **DAILY_RUN_TAGS,
            "trigger": "features-approved",
            "features_run_id": run.run_id,
            # The tick's time: the training run's schedule-to-start is measured from it.
            **requested_at_tags(),
        },
        # The daily model starts from the model production serves (it passed its evaluation),
        # not from whatever D-1 trained: a rejected candidate never seeds tomorrow
        # (model_checkpoint's own default is init_from none; see docs/training.md, warm
        # start).
        run_config={"ops": {"model_checkpoint": {"config": {"init_from": "production"}}}},
    )


def daily_training_sensor(
    default_status: dg.DefaultSensorStatus, training_job=daily_training_job
) -> dg.SensorDefinition:
    """`training_job`: the deployment's own (assets/jobs.py `training_job`), the same object
    the definitions list (two objects of one name do not load)."""

    @dg.run_status_sensor(
        name="daily_training_sensor",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[daily_features_job],
        request_job=training_job,
        minimum_interval_seconds=30,
        default_status=default_status,
        description="Trains and evaluates the newest day once its daily features run succeeded.",
    )
    def sensor(context: dg.RunStatusSensorContext):
        return training_request(context.dagster_run, training_partitions.get_last_partition_key())

    return sensor
