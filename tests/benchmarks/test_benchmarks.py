"""Benchmarks run end to end on tiny inputs and end with their ratio line (no timing asserted)."""

import re
import subprocess
import sys

import pytest

from tests.support.environment import REPO_ROOT

# Starts real processes (trainer, daemon/webserver, make): `make test-fast` skips it.
pytestmark = pytest.mark.slow


def _run(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


def test_training_benchmark_prints_its_ratio_last():
    lines = _run(
        "benchmarks.training", "--steps", "40", "--checkpoint-every", "10", "--impressions", "200"
    )
    assert re.fullmatch(r"ratio=\d+\.\d+", lines[-1])
    assert any(line.startswith("checkpoint_blocking_share=") for line in lines)
    assert any(line.startswith("resume_load_s=") for line in lines)


def test_features_benchmark_prints_its_ratio_last():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.features",
            "--days",
            "2",
            "--impressions",
            "100",
            "--repeats",
            "1",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"ratio=\d+\.\d+", lines[-1])
    assert any(line.startswith("bare_s_per_partition=") for line in lines)
