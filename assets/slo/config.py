"""The SLO thresholds: run config of `pipeline_slo`, with defaults sized for a daily model."""

import dagster as dg
from pydantic import Field


class SloConfig(dg.Config):
    """Change a threshold for one materialization in the launchpad, or here for every day."""

    max_training_schedule_to_start_seconds: float = Field(
        default=60.0,
        description="The daily training run must start within this many seconds of its request.",
    )
    min_success_ratio: float = Field(
        default=0.99, description="Successful / finished daily runs over the trailing window."
    )
    success_window_days: int = Field(
        default=7, description="Days of daily runs the success ratio covers (the day included)."
    )
    breach_days: int = Field(
        default=3, description="Consecutive days below min_success_ratio that make a breach."
    )
    max_production_age_days: int = Field(
        default=2,
        description="The production model may be at most this many days older than the day.",
    )
