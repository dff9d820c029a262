"""Rollback means what an operator predicts: the version that served before the current one was
promoted, skipping versions that were themselves rolled back; the version left is marked, so
no automatic promotion brings it back unless the caller names it; rolling back again goes
further back, never forward."""

import pytest

from resources.registry.registry import (
    PRODUCTION,
    ModelRegistry,
    NothingToRollBackTo,
    PromotionConflict,
    RolledBackVersion,
    promote,
)
from resources.storage.object_store import LocalObjectStore
from tests.support.registry import record


@pytest.fixture
def registry(tmp_path):
    registry = ModelRegistry(LocalObjectStore(tmp_path), "ctr")
    for version in ("v1", "v2", "v3", "v4"):
        registry.register(record(version))
    promote(registry, "v1", None, "day 1", "r1")
    promote(registry, "v2", "v1", "day 2", "r2")
    promote(registry, "v3", "v2", "day 3", "r3")
    return registry


def _current(registry) -> str:
    return registry.resolve(PRODUCTION).version


def test_rolling_back_twice_goes_further_back_never_forward(registry):
    first = registry.rollback(PRODUCTION, expected="v3", why="v3 drops clicks", run_id="rb1")
    assert (first.move.kind, first.move.from_version, first.move.to_version) == (
        "rollback", "v3", "v2",
    )  # fmt: skip
    second = registry.rollback(PRODUCTION, expected="v2", why="v2 too", run_id="rb2")
    assert (second.move.from_version, second.move.to_version) == ("v2", "v1")
    assert _current(registry) == "v1"
    with pytest.raises(NothingToRollBackTo, match="'v1'"):
        registry.rollback(PRODUCTION, expected="v1", why="and v1", run_id="rb3")
    assert _current(registry) == "v1"
    assert registry.read_alias(PRODUCTION).rolled_back == {"v3": 4, "v2": 5}
    assert registry.verify(PRODUCTION) == []


def test_a_rolled_back_version_needs_an_override_naming_it(registry):
    registry.rollback(PRODUCTION, expected="v3", why="v3 drops clicks", run_id="rb")
    # The daily promotion of v3 re-run (it was evaluated against v2, production is v2 again).
    with pytest.raises(RolledBackVersion) as raised:
        promote(registry, "v3", "v2", "day 3 re-run", "r3b")
    assert "reinstate='v3'" in str(raised.value)
    assert registry.alias_key(PRODUCTION) in str(raised.value)
    assert _current(registry) == "v2"
    with pytest.raises(ValueError, match="reinstate"):
        promote(registry, "v3", "v2", "wrong name", "r3c", reinstate="v4")
    assert promote(registry, "v3", "v2", "fixed upstream", "ops", reinstate="v3").moved
    assert _current(registry) == "v3"


def test_rollback_skips_versions_that_were_rolled_back(registry):
    registry.rollback(PRODUCTION, expected="v3", why="v3 bad", run_id="rb1")  # v3 -> v2
    registry.rollback(PRODUCTION, expected="v2", why="v2 bad", run_id="rb2")  # v2 -> v1
    # An operator reinstates v2 on purpose, then v4 is promoted over it and is bad too:
    # the version before v4 is v2, which was rolled back; before v2 served v1.
    promote(registry, "v2", "v1", "v2 fixed", "ops", reinstate="v2")
    promote(registry, "v4", "v2", "day 4", "r4")
    assert registry.rollback_target(PRODUCTION) == "v1"
    result = registry.rollback(PRODUCTION, expected="v4", why="v4 bad", run_id="rb3")
    assert (result.move.from_version, result.move.to_version) == ("v4", "v1")


def test_a_new_promotion_after_a_rollback_rolls_back_to_the_restored_version(registry):
    registry.rollback(PRODUCTION, expected="v3", why="v3 bad", run_id="rb1")  # v3 -> v2
    promote(registry, "v4", "v2", "day 4", "r4")
    assert (
        registry.rollback(PRODUCTION, expected="v4", why="v4 bad", run_id="rb2").move.to_version
        == "v2"
    )


def test_rollback_is_refused_when_the_alias_moved_and_a_retry_is_a_no_op(registry):
    with pytest.raises(PromotionConflict) as raised:
        registry.rollback(PRODUCTION, expected="v2", why="saw v2", run_id="rb")
    assert (raised.value.expected, raised.value.observed) == ("v2", "v3")
    done = registry.rollback(PRODUCTION, expected="v3", why="v3 bad", run_id="rb")
    again = registry.rollback(PRODUCTION, expected="v3", why="v3 bad", run_id="rb-retry")
    assert not again.moved and again.move == done.move
    assert _current(registry) == "v2"
