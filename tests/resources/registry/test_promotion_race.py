"""The acceptance race: 8 processes x 20 rounds promote their own version from the same
observed production, on the local backend and on the S3 API server on loopback."""

import subprocess
import sys

import pytest

from benchmarks.promotion_race import StoreSpec, run_race
from tests.support.environment import REPO_ROOT

pytestmark = pytest.mark.slow  # 8 racing processes per case

RACERS, ROUNDS = 8, 20


def _check(result: dict) -> None:
    assert result["errors"] == []
    for round_index in range(ROUNDS):
        outcomes = result["by_round"][round_index]
        assert outcomes["won"] == 1, (round_index, outcomes)
        assert outcomes["conflict"] == RACERS - 1, (round_index, outcomes)
    history = result["history"]
    assert [m.sequence for m in history] == list(range(1, ROUNDS + 1))
    # Each move starts where the previous ended, and each round's winner is its move.
    for round_index, move in enumerate(history):
        assert move.to_version.startswith(f"r{round_index:03d}-")
        assert move.from_version == (history[round_index - 1].to_version if round_index else None)
    assert result["lost_updates"] == 0
    assert result["dangling"] == 0
    assert result["committed_reported_failed"] == 0
    assert result["problems"] == []


def test_race_on_the_local_backend(tmp_path):
    _check(run_race(StoreSpec("local", root=str(tmp_path)), RACERS, ROUNDS))


def test_race_with_injected_409s_on_the_local_backend(tmp_path):
    """A 409 answered before or after a racer's write landed never turns a committed
    promotion into a reported failure, nor a lost one into a reported success."""
    spec = StoreSpec("local", root=str(tmp_path), inject_409=0.3)
    _check(run_race(spec, RACERS, ROUNDS))


def test_race_on_s3(s3_endpoint, s3_bucket):
    _check(run_race(StoreSpec("s3", endpoint=s3_endpoint, bucket=s3_bucket), RACERS, ROUNDS))


def test_benchmark_prints_the_acceptance_line_last():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.promotion_race", "--racers", "3", "--rounds", "4"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert "inject_409=0.2" in done.stdout  # 409s are injected by default
    assert last.startswith(
        "rounds=4 winners=4 lost_updates=0 dangling=0 committed_reported_failed=0 p50_promote_ms="
    )
    assert "p99_promote_ms=" in last
