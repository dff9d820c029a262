"""The SLO numbers by name: the asset's metadata keys and the Prometheus metrics they become.

One list, read by `pipeline_slo` (which records each key per day) and by the exporter (which
serves each under its Prometheus name, the unit at the end of the name).
"""

from dataclasses import dataclass

STAGES = ("features", "training")
VERDICTS_KEY = "verdicts"  # JSON metadata: check name -> passed | failed | warn


@dataclass(frozen=True)
class SloMetric:
    key: str  # the asset's metadata entry (a float, plotted per day in the UI)
    name: str  # the Prometheus gauge
    help: str
    labels: tuple[tuple[str, str], ...] = ()


def _stage_metrics(stage: str) -> list[SloMetric]:
    labels = (("stage", stage),)
    return [
        SloMetric(
            f"{stage}_schedule_to_start_seconds",
            "ml_pipeline_schedule_to_start_seconds",
            "Seconds from the schedule's due time or the sensor tick to the daily run's start.",
            labels,
        ),
        SloMetric(
            f"{stage}_queue_wait_seconds",
            "ml_pipeline_queue_wait_seconds",
            "Seconds the daily run spent in the run queue (enqueued to handed to the launcher).",
            labels,
        ),
        SloMetric(
            f"{stage}_duration_seconds",
            "ml_pipeline_run_duration_seconds",
            "Seconds from the daily run's start to its end (retries included).",
            labels,
        ),
        SloMetric(
            f"{stage}_success_ratio",
            "ml_pipeline_run_success_ratio",
            "Succeeded / finished daily runs of this stage for the day (1: the run succeeded).",
            labels,
        ),
        SloMetric(
            f"{stage}_cost_usd",
            "ml_pipeline_run_cost_usd",
            "USD: run seconds x the CPUs and GPUs held, at the configured hourly prices.",
            labels,
        ),
    ]


METRICS: tuple[SloMetric, ...] = (
    *(metric for stage in STAGES for metric in _stage_metrics(stage)),
    SloMetric(
        "end_to_end_seconds",
        "ml_pipeline_end_to_end_seconds",
        "Seconds from the day's data complete to its model promoted (or the stopping verdict).",
    ),
    SloMetric(
        "success_ratio",
        "ml_pipeline_success_ratio",
        "Succeeded / finished daily runs over the trailing window of days.",
    ),
    SloMetric("cost_usd", "ml_pipeline_cost_usd", "USD spent on the day's daily runs."),
    SloMetric(
        "production_model_age_days",
        "ml_pipeline_production_model_age_days",
        "Days between the day and the data day of the model production served at its end.",
    ),
    SloMetric(
        "bad_promotion_to_rollback_seconds",
        "ml_pipeline_bad_promotion_to_rollback_seconds",
        "Seconds the day before's model served from its promotion to its rollback (the "
        "next-day guard's, or a person's); absent when it was not rolled back.",
    ),
)
