"""The deadline check flags a daily partition that has not landed on time."""

import datetime as dt

import dagster as dg

from definitions import build_definitions
from sensors.freshness import CHECK_NAME, DAILY_ASSETS, expected_partition


def test_expected_partition_moves_at_the_deadline():
    before = dt.datetime(2026, 11, 21, 8, 59, tzinfo=dt.UTC)
    after = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
    assert expected_partition(before) == "2026-11-19"
    assert expected_partition(after) == "2026-11-20"


def test_missing_partition_fails_and_a_landed_one_passes():
    job = build_definitions("local").resolve_job_def("freshness_checks_job")
    partition = expected_partition(dt.datetime.now(dt.UTC))
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key="daily_events", partition=partition)
        )
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        evaluations = {
            e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()
        }
    assert set(evaluations) == set(DAILY_ASSETS)
    assert all(e.check_name == CHECK_NAME for e in evaluations.values())
    assert evaluations["daily_events"].passed
    late = evaluations["training_examples"]
    assert not late.passed
    assert late.severity == dg.AssetCheckSeverity.WARN
    assert f"partition {partition} has not landed" in late.description
