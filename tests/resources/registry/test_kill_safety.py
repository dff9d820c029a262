"""A real subprocess SIGKILLed at each step of a promotion or a rollback leaves a registry that
reads consistently, names either the old or the new version, and accepts the next move."""

import dataclasses
import json
import subprocess
import sys

import pytest

from benchmarks.promotion_race import StoreSpec
from resources.registry.registry import PRODUCTION, ModelRegistry, RolledBackVersion, promote
from tests.support.environment import REPO_ROOT
from tests.support.registry import record

pytestmark = pytest.mark.slow  # one Python subprocess per case

# kill point -> (production after the kill, history records stored after the kill)
OUTCOMES = {
    "version_record": ("v1", 1),
    "inside_pointer_cas": ("v1", 1),
    "pointer": ("v2", 1),
    "history": ("v2", 2),
}
CASES = [("local", kill_at) for kill_at in OUTCOMES] + [
    ("s3", kill_at) for kill_at in OUTCOMES if kill_at != "inside_pointer_cas"
]


@pytest.fixture
def spec(request, tmp_path):
    if request.param == "local":
        return StoreSpec("local", root=str(tmp_path / "store"))
    return StoreSpec(
        "s3",
        endpoint=request.getfixturevalue("s3_endpoint"),
        bucket=request.getfixturevalue("s3_bucket"),
    )


@pytest.mark.parametrize(("spec", "kill_at"), CASES, indirect=["spec"])
def test_sigkill_at_each_step_leaves_a_consistent_registry(spec, kill_at):
    registry = ModelRegistry(spec.open(), "ctr")
    registry.register(record("v1"))
    registry.register(record("v3"))
    promote(registry, "v1", None, "first model", "run-1")

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.resources.registry.promote_and_die",
            json.dumps(dataclasses.asdict(spec)),
            kill_at,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, (done.returncode, done.stdout, done.stderr)
    assert "started" in done.stdout
    assert "promoted without being killed" not in done.stdout

    production, stored_history = OUTCOMES[kill_at]
    assert registry.verify(PRODUCTION) == []
    assert registry.resolve(PRODUCTION).version == production
    assert registry.get_version("v2").run_id == "dying-run"
    expected_moves = [(None, "v1")] + ([("v1", "v2")] if production == "v2" else [])
    assert [(m.from_version, m.to_version) for m in registry.history(PRODUCTION)] == expected_moves
    history_prefix = f"{registry.prefix}/history/{PRODUCTION}"
    assert len(registry.store.list_keys(history_prefix)) == stored_history

    # Not wedged (the dead process's lock is gone): the next decision goes through, no gap.
    promote(registry, "v3", production, "next candidate", "run-3")
    moves = registry.history(PRODUCTION)
    assert [m.sequence for m in moves] == list(range(1, len(expected_moves) + 2))
    assert len(registry.store.list_keys(history_prefix)) == len(moves)
    assert registry.verify(PRODUCTION) == []


ROLLBACK_OUTCOMES = {  # kill point -> production after the kill (the rollback moves v2 -> v1)
    "inside_pointer_cas": "v2",
    "pointer": "v1",
    "history": "v1",
}
ROLLBACK_CASES = [("local", kill_at) for kill_at in ROLLBACK_OUTCOMES] + [
    ("s3", kill_at) for kill_at in ROLLBACK_OUTCOMES if kill_at != "inside_pointer_cas"
]


@pytest.mark.parametrize(("spec", "kill_at"), ROLLBACK_CASES, indirect=["spec"])
def test_sigkill_during_a_rollback_leaves_it_whole_or_undone(spec, kill_at):
    registry = ModelRegistry(spec.open(), "ctr")
    for version in ("v1", "v2", "v3"):
        registry.register(record(version))
    promote(registry, "v1", None, "first model", "run-1")
    promote(registry, "v2", "v1", "second model", "run-2")

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.resources.registry.promote_and_die",
            json.dumps(dataclasses.asdict(spec)),
            kill_at,
            "rollback",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, (done.returncode, done.stdout, done.stderr)

    production = ROLLBACK_OUTCOMES[kill_at]
    assert registry.verify(PRODUCTION) == []
    assert registry.resolve(PRODUCTION).version == production
    state = registry.read_alias(PRODUCTION)
    # The mark is part of the swap: present exactly when the rollback committed.
    assert ("v2" in state.rolled_back) == (production == "v1")
    if production == "v1":
        with pytest.raises(RolledBackVersion):
            promote(registry, "v2", "v1", "the daily run again", "run-2b")
    # The next move goes through with no gap, and every record is stored.
    promote(registry, "v3", production, "next candidate", "run-3")
    moves = registry.history(PRODUCTION)
    assert [m.sequence for m in moves] == list(range(1, len(moves) + 1))
    history_prefix = f"{registry.prefix}/history/{PRODUCTION}"
    assert len(registry.store.list_keys(history_prefix)) == len(moves)
    assert registry.verify(PRODUCTION) == []
