"""`pipeline_slo` on a real instance: its numbers match what the run records say, its checks
judge them against the run config's thresholds, and each breach alerts exactly once.

The runs are real in-process runs of the stand-in daily jobs of tests/support/slo.py.
"""

import datetime as dt
import logging
import math

import dagster as dg
import pytest

from assets.slo.alerts import marker_key
from assets.slo.tags import REQUESTED_AT_TAG
from resources.factory import build_resources
from resources.pricing import ComputePrices
from resources.registry.registry import PRODUCTION
from tests.support.registry import record
from tests.support.slo import features_job, home, materialize_slo, run_daily, training_job

DAY = "2026-11-05"
PRICES = ComputePrices(cpu_hour_usd="0.36", gpu_hour_usd="3.6", cpus_per_run="2")


def _day(offset: int) -> str:
    return (dt.date.fromisoformat(DAY) + dt.timedelta(days=offset)).isoformat()


@pytest.fixture
def world(tmp_path):
    """Three days of daily runs (the first day's training fails, the last day's training was
    requested 120 s before it started) and a production model 3 days older than DAY."""
    with dg.instance_for_test(temp_dir=home(tmp_path)) as instance:
        resources = build_resources("local", local_root=tmp_path / "local")
        resources["compute_prices"] = PRICES
        registry = resources["registry"].open_registry()
        registry.register(record("old-model", day=_day(-3)))
        registry.move_alias(PRODUCTION, "old-model", expected=None, why="seed", run_id="seed")
        runs = {}
        for offset in (-2, -1, 0):
            day = _day(offset)
            runs[day] = {
                "features": run_daily(instance, features_job, day, 5),
                "training": run_daily(
                    instance,
                    training_job,
                    day,
                    120 if offset == 0 else 3,
                    **({"fail": True} if offset == -2 else {}),
                ),
            }
        yield instance, resources, runs


def _alerts(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ml_template.alerts"]


def _requested(run_record) -> float:
    return dt.datetime.fromisoformat(run_record.dagster_run.tags[REQUESTED_AT_TAG]).timestamp()


def test_the_numbers_are_what_the_run_records_say(world):
    instance, resources, runs = world
    metadata, _ = materialize_slo(instance, resources, DAY)
    features, training = runs[DAY]["features"], runs[DAY]["training"]

    # Computed here from the run records alone; the asset must agree to the millisecond.
    assert metadata["training_schedule_to_start_seconds"] == pytest.approx(
        training.start_time - _requested(training), abs=1e-3
    )
    assert metadata["training_schedule_to_start_seconds"] > 120
    assert metadata["features_schedule_to_start_seconds"] == pytest.approx(
        features.start_time - _requested(features), abs=1e-3
    )
    assert metadata["training_duration_seconds"] == pytest.approx(
        training.end_time - training.start_time, abs=1e-3
    )
    # In-process runs never pass through the run queue: no queue part to report.
    assert math.isnan(metadata["training_queue_wait_seconds"])
    assert metadata["features_success_ratio"] == 1.0
    assert metadata["training_success_ratio"] == 1.0

    # Cost: 2 CPUs at 0.36 USD/h for every run, and 2 GPUs at 3.6 USD/h for the CUDA trainer.
    cpu_rate, gpu_rate = 2 * 0.36 / 3600, 2 * 3.6 / 3600
    training_cost = (training.end_time - training.start_time) * (cpu_rate + gpu_rate)
    features_cost = (features.end_time - features.start_time) * cpu_rate
    assert metadata["training_cost_usd"] == pytest.approx(training_cost, rel=1e-6)
    assert metadata["cost_usd"] == pytest.approx(training_cost + features_cost, rel=1e-6)

    # End to end: the features run's request to the promotion's materialization.
    [promotion] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("model_promotion"), asset_partitions=[DAY]),
        limit=10,
    ).records
    assert promotion.run_id == training.dagster_run.run_id
    assert metadata["end_to_end_outcome"] == "promoted"
    assert metadata["end_to_end_seconds"] == pytest.approx(
        promotion.timestamp - _requested(features), abs=1e-3
    )

    # 6 daily runs in the trailing window, the first day's training failed.
    assert metadata["success_ratio"] == pytest.approx(5 / 6)
    assert metadata["production_model_age_days"] == 3
    assert metadata["production_version"] == "old-model"
    # Nothing promoted for the day before was rolled back.
    assert math.isnan(metadata["bad_promotion_to_rollback_seconds"])
    assert metadata["rolled_back_version"] == "none"
    assert [row["run_id"] for row in metadata["runs"]] == [
        features.dagster_run.run_id,
        training.dagster_run.run_id,
    ]


def test_thresholds_are_run_config_and_each_breach_alerts_once(world, caplog):
    instance, resources, runs = world
    failed_run = runs[_day(-2)]["training"].dagster_run.run_id
    late_run = runs[DAY]["training"].dagster_run.run_id
    store = resources["storage"].open_store()
    caplog.set_level(logging.ERROR, logger="ml_template.alerts")

    lenient = {
        "max_training_schedule_to_start_seconds": 600,
        "min_success_ratio": 0.5,
        "max_production_age_days": 7,
    }
    metadata, checks = materialize_slo(instance, resources, DAY, **lenient)
    assert all(check.passed for check in checks.values()), checks
    assert metadata["verdicts"] == dict.fromkeys(checks, "passed")
    assert _alerts(caplog) == []

    metadata, checks = materialize_slo(instance, resources, DAY)
    assert not any(check.passed for check in checks.values())
    assert metadata["verdicts"] == dict.fromkeys(checks, "failed")
    late = checks["training_schedule_to_start"]
    assert late_run in late.description and "threshold 60 s" in late.description
    assert late.metadata["observed_value"].value == pytest.approx(
        metadata["training_schedule_to_start_seconds"]
    )
    ratio = checks["success_ratio"]
    assert f"{_day(-2)} 0.500 (1/2), {_day(-1)} 0.750 (3/4), {DAY} 0.833 (5/6)" in (
        ratio.description
    )
    assert failed_run in ratio.description
    assert "3 day(s) older than the day; threshold 2 day(s)" in (
        checks["production_model_age"].description
    )
    alerts = _alerts(caplog)
    assert len(alerts) == 3, alerts
    assert any(late_run in a and "training_schedule_to_start" in a for a in alerts)
    assert any(failed_run in a and "success_ratio" in a for a in alerts)
    assert any("production_model_age: observed 3" in a for a in alerts)
    assert store.exists(marker_key(DAY, "success_ratio"))

    # Materialized again (a re-run, a backfill of the SLO): the same breaches, no new alert.
    caplog.clear()
    _, checks = materialize_slo(instance, resources, DAY)
    assert not any(check.passed for check in checks.values())
    assert _alerts(caplog) == []


def test_a_deployment_without_a_production_model_warns_without_paging(tmp_path, caplog):
    with dg.instance_for_test(temp_dir=home(tmp_path)) as instance:
        resources = build_resources("local", local_root=tmp_path / "local")
        run_daily(instance, features_job, DAY, 1)
        caplog.set_level(logging.ERROR, logger="ml_template.alerts")
        metadata, checks = materialize_slo(instance, resources, DAY)
    age = checks["production_model_age"]
    assert not age.passed and age.severity == dg.AssetCheckSeverity.WARN
    assert "no production model" in age.description
    assert checks["training_schedule_to_start"].passed
    assert "no daily training run yet" in checks["training_schedule_to_start"].description
    assert metadata["end_to_end_outcome"] == "not trained"
    assert math.isnan(metadata["production_model_age_days"])
    assert _alerts(caplog) == []
