"""The deadline check flags a daily partition that has not landed on time."""

import datetime as dt

import dagster as dg

from assets.quality.deadline import CHECK_NAME, DAILY_ASSETS, expected_partition
from definitions import build_definitions
from tests.support.example import (
    EXAMPLE_DAILY_ASSETS,
    example_daily_events,
    example_deadline_check,
    example_feature_assets,
)

DAY_ASKED = "2026-11-03"


def test_expected_partition_moves_at_the_deadline():
    before = dt.datetime(2026, 11, 21, 8, 59, tzinfo=dt.UTC)
    after = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
    assert expected_partition(before) == "2026-11-19"
    assert expected_partition(after) == "2026-11-20"


def test_missing_partition_fails_and_a_landed_one_passes():
    job = build_definitions("local").resolve_job_def("freshness_checks_job")
    now = dt.datetime.now(dt.UTC)
    with dg.instance_for_test() as instance:
        # The check judges the day as of the run's creation, a moment after `now`: land both
        # candidates, so a deadline passing in between cannot change the outcome.
        for moment in (now, now + dt.timedelta(minutes=5)):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key="daily_events", partition=expected_partition(moment)
                )
            )
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        created = instance.get_run_record_by_id(result.run_id).create_timestamp
        evaluations = {
            e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()
        }
    partition = expected_partition(created)
    assert set(evaluations) == set(DAILY_ASSETS)
    assert all(e.check_name == CHECK_NAME for e in evaluations.values())
    assert evaluations["daily_events"].passed
    assert evaluations["daily_events"].metadata["expected_partition"].value == partition
    # The project's feature tables landed nothing: each is late (the last one is judged here).
    late = evaluations[DAILY_ASSETS[-1]]
    assert not late.passed
    assert late.severity == dg.AssetCheckSeverity.WARN
    assert f"partition {partition} has not landed" in late.description


def test_in_a_manual_materialization_it_judges_the_day_asked_for(local_resources):
    """Selecting the assets in the UI brings their deadline checks into the run: they must
    judge the partition being materialized, not fail about yesterday's."""
    result = dg.materialize(
        [example_daily_events, *example_feature_assets, example_deadline_check],
        partition_key=DAY_ASKED,
        resources=local_resources,
    )
    assert result.success
    evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name == CHECK_NAME]
    summaries = [e for e in evaluations if e.partition is None]
    per_day = [e for e in evaluations if e.partition is not None]
    assert {e.asset_key.to_user_string() for e in summaries} == set(EXAMPLE_DAILY_ASSETS)
    for evaluation in summaries:
        assert evaluation.passed, evaluation.description
        assert evaluation.metadata["expected_partition"].value == DAY_ASKED
        assert f"partition(s) {DAY_ASKED} (asked for by this run) landed" == evaluation.description
    # One evaluation against the day itself per asset, so the partition Dagster planned for
    # the check in this run is resolved (the UI lists it as Passed, not Skipped).
    assert sorted(e.asset_key.to_user_string() for e in per_day) == sorted(EXAMPLE_DAILY_ASSETS)
    for evaluation in per_day:
        assert evaluation.passed and evaluation.partition == DAY_ASKED
        assert evaluation.description == f"{DAY_ASKED}: landed (asked for by this run)"
