"""The guard's one action on the registry: take production back from the version it judged to
the version that version replaced, by compare-and-swap, and mark the demoted version.

`expected` is the version the guard judged: the move happens only while the alias still
names it, so a newer promotion made after the judgement is never overwritten (the conflict is
returned, not raised). A second call after a completed rollback moves nothing.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

from resources.registry.registry import PRODUCTION, ModelRegistry, PromotionConflict
from resources.storage.object_store import PreconditionFailed

DEMOTED_PREFIX = "demoted"


@dataclass(frozen=True)
class RollbackOutcome:
    moved: bool  # this call moved the alias
    rolled_back: bool  # the alias names the restored version after a rollback from `expected`
    observed: str | None  # what the alias named when the move was refused (a conflict)
    sequence: int | None  # the alias move that restored the replaced version


def demoted_key(registry: ModelRegistry, version: str) -> str:
    return f"{registry.prefix}/{DEMOTED_PREFIX}/{version}.json"


def mark_demoted(registry: ModelRegistry, version: str, why: str, run_id: str) -> None:
    """Record, create-only, that `version` was taken out of production and why."""
    record = {"version": version, "why": why, "run_id": run_id}
    with contextlib.suppress(PreconditionFailed):  # marked already: the first reason stays
        registry.store.put_if_absent(  # type: ignore[attr-defined]
            demoted_key(registry, version), json.dumps(record, sort_keys=True).encode()
        )


def roll_back(
    registry: ModelRegistry, *, expected: str, to_version: str, why: str, run_id: str
) -> RollbackOutcome:
    """Move production from `expected` back to `to_version` if it still names `expected`."""
    try:
        result = registry.move_alias(
            PRODUCTION, to_version, expected=expected, why=why, run_id=run_id
        )
    except PromotionConflict as conflict:
        return RollbackOutcome(False, False, conflict.observed, None)
    if result.move.from_version != expected:
        # The alias already named `to_version`, put there by some other move: not our rollback.
        return RollbackOutcome(False, False, to_version, None)
    mark_demoted(registry, expected, why, run_id)
    return RollbackOutcome(result.moved, True, None, result.move.sequence)
