"""Gate thresholds as run config: defaults in code, overridable per run from the launchpad."""

import math
from collections.abc import Mapping
from typing import Literal

import dagster as dg
from pydantic import Field

from assets.publishing.write_audit_publish import PublishPolicy
from assets.quality.distribution import DistributionThresholds, Level
from assets.quality.gates import GateThresholds, ValueRange
from assets.quality.replay import GATE as REPLAY_GATE
from assets.quality.replay import ReplayThresholds


class GateConfig(dg.Config):
    """Quality-gate thresholds. Per-column maps are merged over the asset's own defaults."""

    volume_min_rows: int = Field(default=1, description="Fewest rows a partition may have.")
    volume_band_low: float = Field(default=0.5, description="Rows >= this x trailing median.")
    volume_band_high: float = Field(default=2.0, description="Rows <= this x trailing median.")
    volume_history: int = Field(default=7, description="Trailing partitions in the median.")
    volume_min_history: int = Field(default=3, description="Partitions needed before the band.")
    required_hours: int = Field(default=24, description="Hours of the day that must have data.")
    min_hour_share_fraction: float = Field(
        default=0.25,
        description="An hour counts as present with at least this x its usual share of events.",
    )
    max_null_rate: dict[str, float] = Field(default={}, description="Column -> max null share.")
    value_min: dict[str, float] = Field(default={}, description="Column -> smallest value.")
    value_max: dict[str, float] = Field(default={}, description="Column -> largest value.")
    max_repeated_share: float = Field(
        default=0.005, description="Largest share of events repeating others under new ids."
    )
    label_rate_band_low: float = Field(default=0.5, description="Label rate >= this x median.")
    label_rate_band_high: float = Field(default=2.0, description="Label rate <= this x median.")
    event_mix_band_low: float = Field(default=0.5, description="Type share >= this x median.")
    event_mix_band_high: float = Field(default=2.0, description="Type share <= this x median.")
    max_psi: float = Field(default=0.25, description="Largest categorical drift (PSI).")
    max_quantile_shift: float = Field(
        default=0.5, description="Largest relative shift of a p10/p50/p90 from its median."
    )
    # Distribution gates: each statistic warns above max(its moderate floor, moderate factor x
    # the history's own day-over-day spread) and blocks above max(severe floor, severe factor x
    # that spread).
    drift_moderate_factor: float = Field(
        default=2.0, description="Warn above this x the history's own day-over-day spread."
    )
    drift_severe_factor: float = Field(
        default=4.0, description="Block above this x the history's own day-over-day spread."
    )
    psi_moderate: float = Field(default=0.1, description="Categorical PSI that always warns.")
    psi_severe: float = Field(default=0.25, description="Categorical PSI that always blocks.")
    distinct_moderate: float = Field(
        default=1.2, description="Distinct-count change by this factor (either way) warns."
    )
    distinct_severe: float = Field(
        default=1.4, description="Distinct-count change by this factor (either way) blocks."
    )
    median_shift_moderate: float = Field(
        default=0.25, description="Numeric median shift, in the history's IQRs, that warns."
    )
    median_shift_severe: float = Field(
        default=0.5, description="Numeric median shift, in the history's IQRs, that blocks."
    )
    spread_moderate: float = Field(
        default=1.25, description="Inter-quartile range change by this factor that warns."
    )
    spread_severe: float = Field(
        default=1.5, description="Inter-quartile range change by this factor that blocks."
    )
    outside_share_moderate: float = Field(
        default=0.25, description="Share outside the history's central 90% range that warns."
    )
    outside_share_severe: float = Field(
        default=0.5, description="Share outside the history's central 90% range that blocks."
    )
    replay_share_moderate: float = Field(
        default=0.05, description="Share of the day's rows repeating one earlier day that warns."
    )
    replay_share_severe: float = Field(
        default=0.2, description="Share of the day's rows repeating one earlier day that blocks."
    )
    warn_only: list[str] = Field(default=[], description="Gates that report without blocking.")
    blocking_drift: list[str] = Field(
        default=[],
        description="Drift gates (category_drift, numeric_drift) that block; by default they warn.",
    )
    on_refused_redelivery: Literal["keep_approved", "take_offline"] = Field(
        default="keep_approved",
        description=(
            "When a new delivery of an approved day fails its gates: keep serving the approved "
            "version (default), or take the day offline until a delivery passes."
        ),
    )
    keep_versions: int = Field(
        default=2, ge=1, description="Approved versions kept per day (the current one included)."
    )

    def publish_policy(self) -> PublishPolicy:
        return PublishPolicy(
            on_refused_redelivery=self.on_refused_redelivery, keep_versions=self.keep_versions
        )

    def distribution_thresholds(self) -> DistributionThresholds:
        moderate, severe = self.drift_moderate_factor, self.drift_severe_factor
        return DistributionThresholds(
            psi_moderate=Level(self.psi_moderate, moderate),
            psi_severe=Level(self.psi_severe, severe),
            distinct_moderate=Level(math.log(self.distinct_moderate), moderate),
            distinct_severe=Level(math.log(self.distinct_severe), severe),
            median_shift_moderate=Level(self.median_shift_moderate, moderate),
            median_shift_severe=Level(self.median_shift_severe, severe),
            spread_moderate=Level(math.log(self.spread_moderate), moderate),
            spread_severe=Level(math.log(self.spread_severe), severe),
            outside_moderate=Level(self.outside_share_moderate, moderate),
            outside_severe=Level(self.outside_share_severe, severe),
            min_history=self.volume_min_history,
            warn_only=frozenset(self.warn_only),
        )

    def replay_thresholds(self) -> ReplayThresholds:
        return ReplayThresholds(
            moderate_share=self.replay_share_moderate,
            severe_share=self.replay_share_severe,
            warn_only=REPLAY_GATE in self.warn_only,
        )

    def thresholds(
        self, null_defaults: Mapping[str, float], range_defaults: Mapping[str, ValueRange]
    ) -> GateThresholds:
        if "schema_contract" in self.warn_only:
            raise ValueError(
                "schema_contract cannot be warn-only: nothing downstream can read a table that "
                "breaks its contract. Remove it from warn_only."
            )
        ranges = dict(range_defaults)
        for column in {*self.value_min, *self.value_max}:
            base = ranges.get(column, ValueRange())
            ranges[column] = ValueRange(
                minimum=self.value_min.get(column, base.minimum),
                maximum=self.value_max.get(column, base.maximum),
                allowed=base.allowed,
            )
        return GateThresholds(
            volume_min_rows=self.volume_min_rows,
            volume_band_low=self.volume_band_low,
            volume_band_high=self.volume_band_high,
            volume_history=self.volume_history,
            volume_min_history=self.volume_min_history,
            required_hours=self.required_hours,
            min_hour_share_fraction=self.min_hour_share_fraction,
            max_repeated_share=self.max_repeated_share,
            label_rate_band_low=self.label_rate_band_low,
            label_rate_band_high=self.label_rate_band_high,
            event_mix_band_low=self.event_mix_band_low,
            event_mix_band_high=self.event_mix_band_high,
            max_psi=self.max_psi,
            max_quantile_shift=self.max_quantile_shift,
            blocking_drift=frozenset(self.blocking_drift),
            max_null_rate={**null_defaults, **self.max_null_rate},
            value_ranges=ranges,
            warn_only=frozenset(self.warn_only),
        )
