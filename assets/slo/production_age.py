"""How old the production model was when a day's pipeline ended, read from the registry.

The alias history says which version `production` named at any moment, so the answer for a
day does not change when its SLO is computed again later (after newer promotions).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from resources.registry.registry import PRODUCTION, ModelRegistry


@dataclass(frozen=True)
class ProductionAt:
    version: str | None
    day: str | None  # the data day the version was trained for
    moved_at: str | None

    def age_days(self, day: str) -> int | None:
        """Days between the SLO's day and the production model's day (0: that day's model)."""
        if self.day is None:
            return None
        return (dt.date.fromisoformat(day) - dt.date.fromisoformat(self.day)).days


def production_at(registry: ModelRegistry, at: float) -> ProductionAt:
    """The version production named at `at` (epoch seconds); version None if none yet."""
    current = None
    for move in registry.history(PRODUCTION):
        if dt.datetime.fromisoformat(move.moved_at).timestamp() <= at:
            current = move
    if current is None:
        return ProductionAt(None, None, None)
    record = registry.get_version(current.to_version)
    return ProductionAt(current.to_version, record.day, current.moved_at)
