"""The guard's one action on the registry: take production back from the version it judged to
the version that served before it, by the registry's compare-and-swap rollback, which marks
the demoted version in the same swap (no automatic promotion brings it back; a person can
reinstate it by name).

`expected` is the version the guard judged: the move happens only while the alias still
names it, so a newer promotion made after the judgement is never overwritten (the conflict is
returned, not raised). A second call after a completed rollback moves nothing. The restored
version must be the one the guard scored production against; if the registry would restore
another (the alias history changed under the judgement), nothing moves.
"""

from __future__ import annotations

from dataclasses import dataclass

from resources.registry.registry import (
    PRODUCTION,
    ROLLBACK,
    ModelRegistry,
    NothingToRollBackTo,
    PromotionConflict,
)


@dataclass(frozen=True)
class RollbackOutcome:
    moved: bool  # this call moved the alias
    rolled_back: bool  # production was rolled back from `expected` to `to_version`
    detail: str  # why not, when it was not


def roll_back(
    registry: ModelRegistry, *, expected: str, to_version: str, why: str, run_id: str
) -> RollbackOutcome:
    """Move production from `expected` back to `to_version` if it still names `expected`."""
    state = registry.read_alias(PRODUCTION)
    if state is not None and state.move.kind == ROLLBACK and state.move.from_version == expected:
        return RollbackOutcome(False, state.version == to_version, "rolled back already")
    try:
        target = registry.rollback_target(PRODUCTION)
        if state is None or state.version != expected:
            observed = state.version if state else None
            return RollbackOutcome(False, False, f"production moved to {observed}")
        if target != to_version:
            return RollbackOutcome(
                False,
                False,
                f"the registry would restore {target}, not {to_version}, the version judged",
            )
        result = registry.rollback(PRODUCTION, expected=expected, why=why, run_id=run_id)
    except PromotionConflict as conflict:
        return RollbackOutcome(False, False, f"production moved to {conflict.observed}")
    except NothingToRollBackTo as err:
        return RollbackOutcome(False, False, str(err))
    return RollbackOutcome(result.moved, result.move.to_version == to_version, "")
