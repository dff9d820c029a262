"""Benchmarks run end to end on tiny inputs and end with their ratio line (no timing asserted).

Those that generate the example's data and run it through the project's declarations pin the
example (the `example_project` fixture says so first once the project declares its own)."""

import re
import subprocess
import sys

import psycopg2
import pytest

from tests.support.environment import POSTGRES_DSN, REPO_ROOT, postgres_unavailable_reason

# Starts real processes (trainer, daemon/webserver, make): `make test-fast` skips it.
pytestmark = pytest.mark.slow


def _run(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


@pytest.mark.usefixtures("example_project")
def test_training_benchmark_prints_its_ratio_last():
    lines = _run(
        "benchmarks.training",
        "--steps",
        "40",
        "--checkpoint-every",
        "10",
        "--impressions",
        "200",
        "--repeats",
        "1",
    )
    assert re.fullmatch(r"ratio=\d+\.\d+", lines[-1])
    assert any(line.startswith("checkpoint_blocking_share=") for line in lines)
    assert any(line.startswith("resume_load_s=") for line in lines)


@pytest.mark.usefixtures("example_project")
def test_features_benchmark_prints_its_ratio_last():
    lines = _run(
        "benchmarks.features", "--impressions", "100", "--repeats", "1", "--scaling", "200"
    )
    # The last line is the whole day's ratio; the feature run's comes before it.
    assert re.fullmatch(r"ratio=\d+\.\d+", lines[-1])
    assert lines[-2].startswith("day_ratio_floor=")
    # Dagster's fixed cost per run, read on the small day apart from the measured day's.
    assert any(line.startswith("day_fixed_overhead_s_per_run=") for line in lines)
    assert any(line.startswith("fixed_overhead_s_per_run=") for line in lines)
    assert any(re.fullmatch(r"features_ratio=\d+\.\d+", line) for line in lines)
    assert any(line.startswith("bare_s_per_partition=") for line in lines)
    assert any(line.startswith("engine_vs_duckdb_peak_rss=") for line in lines)
    modes = {line.split()[0] for line in lines}
    assert {"dagster_features", "bare_features", "engine", "duckdb", "bare_day"} <= modes
    # The scaling table's row, the whole day's five columns included.
    [row] = [line.split() for line in lines if line.split()[:1] == ["200"]]
    assert len(row) == 15


@pytest.mark.usefixtures("example_project")
def test_features_benchmark_measures_dagster_on_the_instance_it_is_given():
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    databases_before = _benchmark_databases()
    lines = _run(
        "benchmarks.features",
        "--impressions",
        "100",
        "--repeats",
        "1",
        "--instance",
        "postgres",
        "--postgres-dsn",
        POSTGRES_DSN,
    )
    assert re.fullmatch(r"ratio=\d+\.\d+", lines[-1])
    assert "instance=postgres" in lines[0].split()
    # The runs were recorded in Postgres, and the events of a run are counted.
    assert "event_log=PostgresEventLogStorage" in lines
    [events] = [line for line in lines if line.startswith("day_events_per_run=")]
    assert int(events.split("=")[1]) > 0
    # The command's own database is gone afterwards.
    assert _benchmark_databases() <= databases_before


def _benchmark_databases() -> set[str]:
    """The databases the features benchmark makes, on the tests' server."""
    admin = psycopg2.connect(POSTGRES_DSN)
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench_features_%'")
            return {name for (name,) in cursor.fetchall()}
    finally:
        admin.close()


@pytest.mark.usefixtures("example_project")
def test_backfill_benchmark_reports_fixed_costs_and_both_peaks_and_its_ratio_last():
    lines = _run("benchmarks.backfill", "--days", "2", "--impressions", "100")
    assert re.fullmatch(r"ratio=\d+\.\d+", lines[-1])
    assert any(line.startswith("backfill_status=COMPLETED_SUCCESS") for line in lines)
    assert any(line.startswith("fixed: launch_to_first_run_start_s=") for line in lines)
    [peaks] = [line for line in lines if line.startswith("run_worker_peak_rss_mib=")]
    # Both peaks were seen: the run workers were sampled while they lived, the bare child too.
    assert all(float(value.split("=")[1]) > 0 for value in peaks.split())


@pytest.mark.usefixtures("example_project")
def test_features_benchmark_engine_only_measures_engine_and_duckdb_alone():
    lines = _run("benchmarks.features", "--impressions", "100", "--repeats", "1", "--engine-only")
    assert re.fullmatch(r"ratio=\d+\.\d+", lines[-1])
    wall = next(line for line in lines if line.startswith("engine_vs_duckdb_wall="))
    assert lines[-1].split("=")[1] == wall.split("=")[1]
    assert any(re.fullmatch(r"engine_vs_duckdb_peak_rss=\d+\.\d+", line) for line in lines)
    table = lines[2 : lines.index(next(line for line in lines if line.startswith("engine_vs")))]
    assert [line.split()[0] for line in table] == ["engine", "duckdb"]


@pytest.mark.usefixtures("example_project")
def test_source_read_benchmark_prints_its_ratio_last():
    lines = _run("benchmarks.source_read", "--impressions", "300")
    assert re.fullmatch(r"ratio=\d+\.\d+", lines[-1])
    assert {"streamed", "whole"} <= {line.split()[0] for line in lines}


@pytest.mark.usefixtures("example_project")
def test_model_quality_benchmark_prints_its_ratio_last():
    lines = _run(
        "benchmarks.model_quality", "--days", "8", "--impressions", "300", "--steps", "20",
        "--fresh", "200", "--init-from", "previous_day",
    )  # fmt: skip
    assert re.fullmatch(r"ratio=\d+\.\d+", lines[-1])
    header = next(i for i, line in enumerate(lines) if line.startswith("day "))
    assert "oracle_auc" in lines[header] and "oracle_ll" in lines[header]
    days = [line.split() for line in lines[header + 1 : -1]]
    assert [row[1] for row in days] == ["2026-10-07", "2026-10-08"]
    assert days[1][-2] == "2026-10-07"  # day 8 warm-started from day 7's model


def test_imports_benchmark_prints_its_ratio_last_and_no_production_client():
    lines = _run("benchmarks.imports", "--repeats", "1")
    assert re.fullmatch(r"ratio=\d+\.\d+", lines[-1])
    assert "production_only_modules_loaded=none" in lines


@pytest.mark.usefixtures("example_project")
def test_next_day_guard_benchmark_prints_its_ratio_last():
    lines = _run(
        "benchmarks.next_day_guard", "--models", "2", "--days-per-pair", "1",
        "--impressions", "300", "--steps", "20", "--min-auc", "0",
    )  # fmt: skip
    # Tiny models may fail their evaluation, leaving nothing judged: the ratio is then nan.
    assert re.fullmatch(r"ratio=(\d+\.\d+|nan)", lines[-1])
    summary = next(line for line in lines if line.startswith("judged_days="))
    assert re.match(r"judged_days=\d+ promotions=\d+ false_rollbacks=\d+ ", summary)
    assert any(line.startswith("smallest_detected_log_loss_increase ") for line in lines)
