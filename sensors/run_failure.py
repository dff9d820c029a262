"""The one place a failed run is announced: when it will not be retried any more.

A run-failure sensor over every job of the code location. Dagster tags each failed run with
`dagster/will_retry` (run retries, `run_retries` in dagster.yaml): a run the retry daemon will
re-execute is not announced, its last attempt is, with its attempt number, the failed steps and
their errors. With run retries off the tag is absent and every failure is announced.
"""

import dagster as dg

from resources.notifier import Alert, Notifier

WILL_RETRY_TAG = "dagster/will_retry"
RETRY_NUMBER_TAG = "dagster/retry_number"
_MAX_ERROR_CHARS = 300


def _root_cause(error) -> str:
    """The innermost error's message: Dagster wraps what the op raised ("Error occurred while
    executing op ...") around the exception that says what went wrong."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error.message.strip()


def failure_alert(run: dg.DagsterRun, message: str, step_errors: dict[str, str]) -> Alert | None:
    """The alert for a failed run, or None while run retries will try it again."""
    if run.tags.get(WILL_RETRY_TAG) == "true":
        return None
    attempt = int(run.tags.get(RETRY_NUMBER_TAG, "0")) + 1
    steps = "; ".join(
        f"{step}: {error[:_MAX_ERROR_CHARS]}" for step, error in sorted(step_errors.items())
    )
    retried = f"retries exhausted after attempt {attempt}" if attempt > 1 else "not retried"
    partition = run.tags.get("dagster/partition") or (
        f"{run.tags['dagster/asset_partition_range_start']}.."
        f"{run.tags.get('dagster/asset_partition_range_end', '')}"
        if "dagster/asset_partition_range_start" in run.tags
        else "none"
    )
    return Alert(
        kind="run_failed",
        asset=run.job_name,
        partition=partition,
        summary=f"run {run.run_id} failed, {retried}: {message}"
        + (f" Failed steps: {steps}" if steps else "")
        + " Open the run in the UI, fix the cause, then re-execute it.",
        run_id=run.run_id,
    )


def run_failure_alert_sensor(default_status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="run_failure_alert_sensor",
        minimum_interval_seconds=30,
        default_status=default_status,
        description="Alerts through the Notifier when a run failed and will not be retried.",
    )
    def sensor(context: dg.RunFailureSensorContext, notifier: Notifier):
        # Read the run again: the will-retry tag is written just after the failure event.
        run = context.instance.get_run_by_id(context.dagster_run.run_id) or context.dagster_run
        step_errors = {
            event.step_key or "run": _root_cause(event.event_specific_data.error)  # type: ignore[union-attr]
            for event in context.get_step_failure_events()
            if event.event_specific_data is not None
            and getattr(event.event_specific_data, "error", None) is not None
        }
        alert = failure_alert(run, context.failure_event.message or "", step_errors)
        if alert is None:
            return dg.SkipReason(f"Run {run.run_id} will be retried; its last attempt alerts.")
        notifier.send(alert)
        return None

    return sensor
