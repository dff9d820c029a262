"""The registry's rules, in one process on the local backend (fast): CAS promotion and its
conflict, immutable records, gap-free history, rollback, and reads after a partial move."""

import json

import pytest

from resources.registry.registry import (
    PRODUCTION,
    AliasNotSet,
    ModelRegistry,
    PromotionConflict,
    RegistryInconsistent,
    UnknownVersion,
    VersionAlreadyRegistered,
    environment_fingerprint,
    promote,
)
from resources.storage.object_store import LocalObjectStore
from tests.support.environment import REPO_ROOT
from tests.support.registry import record


@pytest.fixture
def registry(tmp_path):
    registry = ModelRegistry(LocalObjectStore(tmp_path), "ctr")
    for version in ("v1", "v2", "v3"):
        registry.register(record(version))
    return registry


def test_promotion_is_refused_when_production_moved_since_the_decision(registry):
    assert promote(registry, "v1", None, "first model", "run-1").moved
    # Two candidates were both evaluated against v1; the first one wins.
    assert promote(registry, "v2", "v1", "better than v1", "run-2").moved
    with pytest.raises(PromotionConflict) as raised:
        promote(registry, "v3", "v1", "better than v1", "run-3")
    conflict = raised.value
    assert (conflict.expected, conflict.observed, conflict.candidate) == ("v1", "v2", "v3")
    assert "re-decide against 'v2'" in str(conflict)
    assert registry.resolve(PRODUCTION).version == "v2"
    # Re-decided against v2, it goes through.
    assert promote(registry, "v3", "v2", "better than v2", "run-3b").moved
    moves = registry.history(PRODUCTION)
    assert [(m.sequence, m.from_version, m.to_version, m.run_id) for m in moves] == [
        (1, None, "v1", "run-1"),
        (2, "v1", "v2", "run-2"),
        (3, "v2", "v3", "run-3b"),
    ]
    assert registry.verify(PRODUCTION) == []


def test_first_promotion_expects_no_production(registry):
    promote(registry, "v1", None, "first", "run-1")
    with pytest.raises(PromotionConflict) as raised:
        promote(registry, "v2", None, "also first", "run-2")
    assert raised.value.observed == "v1"


def test_an_unregistered_version_never_becomes_an_alias_target(registry):
    with pytest.raises(UnknownVersion, match="'v9'"):
        promote(registry, "v9", None, "typo", "run-1")
    assert registry.read_alias(PRODUCTION) is None
    with pytest.raises(AliasNotSet, match="production"):
        registry.resolve(PRODUCTION)


def test_a_move_needs_a_reason(registry):
    with pytest.raises(ValueError, match="reason"):
        promote(registry, "v1", None, " ", "run-1")


def test_re_promoting_the_current_version_is_a_recorded_no_op(registry):
    promote(registry, "v1", None, "first", "run-1")
    again = promote(registry, "v1", None, "retried run", "run-1")
    assert not again.moved
    assert len(registry.history(PRODUCTION)) == 1


def test_version_records_are_immutable(registry):
    # The same content again (a retried run) is accepted and changes nothing...
    assert registry.register(record("v1", run_id="retry")).version == "v1"
    assert registry.get_version("v1").run_id == "run-test"
    # ...other content under the same id is refused, naming what differs.
    with pytest.raises(VersionAlreadyRegistered, match="manifest_sha256"):
        registry.register(record("v1", manifest_sha256="b" * 64))
    assert registry.get_version("v1").manifest_sha256 == "a" * 64


def test_rollback_to_previous_moves_back_and_is_recorded(registry):
    promote(registry, "v1", None, "first", "run-1")
    promote(registry, "v2", "v1", "second", "run-2")
    assert registry.rollback_target(PRODUCTION) == "v1"
    result = registry.rollback(PRODUCTION, expected="v2", why="v2 misbehaves", run_id="rb")
    assert result.moved and (result.move.from_version, result.move.to_version) == ("v2", "v1")
    assert registry.resolve(PRODUCTION).version == "v1"
    last = registry.history(PRODUCTION)[-1]
    assert (last.sequence, last.kind, last.from_version, last.to_version, last.why) == (
        3,
        "rollback",
        "v2",
        "v1",
        "v2 misbehaves",
    )


def test_history_taken_from_the_pointer_after_a_crash_before_the_history_record(registry):
    promote(registry, "v1", None, "first", "run-1")
    promote(registry, "v2", "v1", "second", "run-2")
    # What a kill between the pointer CAS and the history record leaves behind:
    registry.store.delete(registry.history_key(PRODUCTION, 2))
    assert [m.to_version for m in registry.history(PRODUCTION)] == ["v1", "v2"]
    assert registry.verify(PRODUCTION) == []
    # The next move writes the missing record first: no gap.
    promote(registry, "v3", "v2", "third", "run-3")
    stored = registry.store.list_keys(f"{registry.prefix}/history/{PRODUCTION}")
    assert [key.rsplit("/", 1)[-1] for key in stored] == [
        "00000001.json",
        "00000002.json",
        "00000003.json",
    ]


def test_a_gap_or_dangling_pointer_is_reported_not_hidden(registry):
    promote(registry, "v1", None, "first", "run-1")
    promote(registry, "v2", "v1", "second", "run-2")
    promote(registry, "v3", "v2", "third", "run-3")
    registry.store.delete(registry.history_key(PRODUCTION, 2))  # made up, cannot happen
    with pytest.raises(RegistryInconsistent, match="gap"):
        registry.history(PRODUCTION)
    registry.store.delete(registry.version_key("v3"))  # made up, cannot happen
    with pytest.raises(RegistryInconsistent, match="dangling"):
        registry.resolve(PRODUCTION)


def test_records_hold_the_lineage_fields(registry):
    stored = json.loads(registry.store.get_bytes(registry.version_key("v1")))
    for name in (
        "model",
        "version",
        "day",
        "checkpoint_manifest_uri",
        "manifest_sha256",
        "dataset",
        "fingerprint",
        "parent_version",
        "code_version",
        "environment",
        "image_digest",
        "torch_version",
        "metrics",
        "evaluation",
        "run_id",
    ):
        assert name in stored, name


def test_environment_fingerprint_compares_with_the_lock():
    env = environment_fingerprint(REPO_ROOT / "requirements.lock")
    assert len(env["environment_sha256"]) == 64
    # The test venv is installed from the lock: dagster's pin matches.
    assert not [m for m in env["lock_mismatches"] if m.startswith("dagster:")]
