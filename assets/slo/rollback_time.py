"""How long a bad promotion served: from the move that promoted the day before's model to the
move that rolled it back, read from the registry's alias history.

The next-day guard of day D judges the model promoted for day D-1 on D's rows, so day D's
number is that model's time in production when it was rolled back (by the guard, or by a
person); None when the model of D-1 was not rolled back. Read from history, the answer for a
day does not change when its SLO is computed again later.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from resources.registry.registry import PRODUCTION, ROLLBACK, ModelRegistry


@dataclass(frozen=True)
class Rollback:
    version: str  # the demoted version
    restored: str  # the version production named again
    promoted_at: str
    rolled_back_at: str
    run_id: str  # the run that rolled it back

    @property
    def seconds(self) -> float:
        start = dt.datetime.fromisoformat(self.promoted_at)
        return (dt.datetime.fromisoformat(self.rolled_back_at) - start).total_seconds()


def rollback_of_previous_day(registry: ModelRegistry, day: str) -> Rollback | None:
    """The rollback of the model promoted for the day before `day`, if there was one."""
    previous = (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()
    promoted: dict[str, str] = {}  # version -> when its latest promotion moved the alias
    found = None
    for move in registry.history(PRODUCTION):
        if move.kind != ROLLBACK:
            promoted[move.to_version] = move.moved_at
            continue
        version = move.from_version
        if version is None or version not in promoted:
            continue
        if registry.get_version(version).day == previous:
            found = Rollback(
                version, move.to_version, promoted[version], move.moved_at, move.run_id
            )
    return found
