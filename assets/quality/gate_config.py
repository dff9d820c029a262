"""Gate thresholds as run config: defaults in code, overridable per run from the launchpad."""

from collections.abc import Mapping

import dagster as dg
from pydantic import Field

from assets.quality.gates import GateThresholds, ValueRange


class GateConfig(dg.Config):
    """Quality-gate thresholds. Per-column maps are merged over the asset's own defaults."""

    volume_min_rows: int = Field(default=1, description="Fewest rows a partition may have.")
    volume_band_low: float = Field(default=0.5, description="Rows >= this x trailing median.")
    volume_band_high: float = Field(default=2.0, description="Rows <= this x trailing median.")
    volume_history: int = Field(default=7, description="Trailing partitions in the median.")
    volume_min_history: int = Field(default=3, description="Partitions needed before the band.")
    required_hours: int = Field(default=24, description="Hours of the day that must have data.")
    max_null_rate: dict[str, float] = Field(default={}, description="Column -> max null share.")
    value_min: dict[str, float] = Field(default={}, description="Column -> smallest value.")
    value_max: dict[str, float] = Field(default={}, description="Column -> largest value.")
    warn_only: list[str] = Field(default=[], description="Gates that report without blocking.")

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
            max_null_rate={**null_defaults, **self.max_null_rate},
            value_ranges=ranges,
            warn_only=frozenset(self.warn_only),
        )
