"""The GPU packing simulation: runs small, ends with its ratio line, and its policy keeps the
properties it claims on the seeds' scenario (the figures themselves belong to the benchmark)."""

import re
import subprocess
import sys

from benchmarks.gpu_packing import Assumptions, Totals, simulate_day
from tests.support.environment import REPO_ROOT


def _lines(*args: str) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_packing", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"ratio=\d+\.\d+", lines[-1])
    return dict(line.split("=", 1) for line in lines[1:])


def test_the_benchmark_prints_both_policies_and_its_ratio_last():
    out = _lines("--days", "2", "--seed", "3")
    for policy in ("today", "policy"):
        for figure in ("gpu_utilization", "daily_wait_p50_s", "daily_wait_p99_s",
                       "idle_while_queued_gpu_h"):  # fmt: skip
            assert f"{policy}_{figure}" in out
    assert out["policy_daily_p99_under_60s_and_no_job_waits_beside_a_fitting_shape"] == "True"
    # Deterministic: the same seed gives the same figures.
    assert _lines("--days", "2", "--seed", "3") == out


def test_today_half_places_multi_node_jobs_and_the_policy_never_does():
    a = Assumptions()
    today, policy = Totals(), Totals()
    for seed in range(3):
        simulate_day(a, seed, packing_policy=False, totals=today)
        simulate_day(a, seed, packing_policy=True, totals=policy)
    # Free shapes without gang admission: pods of a 3 x 6 job hold GPUs while it waits.
    assert today.half_placed_gpu_s > 0 and policy.half_placed_gpu_s == 0
    # Admitted whole when a placement is free: nothing waits beside a fitting one.
    assert policy.waiting_with_fitting_placement_s == 0
    assert len(today.daily_waits) == len(policy.daily_waits) == 3 * a.daily_runs
    # The daily runs' priority: each waits at most one eviction's drain under the policy.
    assert max(policy.daily_waits) <= a.drain_s
    # The same work is done either way.
    assert abs(today.busy_gpu_s - policy.busy_gpu_s) / today.busy_gpu_s < 0.05
