"""Day D's SLOs are requested when D's daily pipeline has nothing left to run, once per run."""

import dagster as dg
import pytest

from assets.partitions import training_partitions
from sensors.schedules import DAILY_RUN_TAGS
from sensors.slo_trigger import slo_request

NEWEST = training_partitions.get_last_partition_key()
OLDER = training_partitions.get_partition_keys()[-3]
DAY = {"dagster/partition": NEWEST}


def _run(job: str, status: dg.DagsterRunStatus, **tags) -> dg.DagsterRun:
    return dg.DagsterRun(job_name=job, run_id="run-1", status=status, tags=tags)


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE])
def test_the_end_of_the_daily_training_run_requests_the_days_slo(status):
    request = slo_request(_run("daily_training_job", status, **DAILY_RUN_TAGS, **DAY), NEWEST)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == NEWEST
    assert request.run_key == f"pipeline-slo-{NEWEST}-run-1"  # once per ended run


def test_a_successful_features_run_waits_for_the_training_that_follows():
    result = slo_request(
        _run("daily_features_job", dg.DagsterRunStatus.SUCCESS, **DAILY_RUN_TAGS, **DAY), NEWEST
    )
    assert isinstance(result, dg.SkipReason) and "training run follows" in result.skip_message


def test_a_features_run_that_ends_the_day_requests_its_slo():
    failed = _run("daily_features_job", dg.DagsterRunStatus.FAILURE, **DAILY_RUN_TAGS, **DAY)
    assert isinstance(slo_request(failed, NEWEST), dg.RunRequest)
    # An older day (a catch-up after an outage) is not trained automatically: judged now.
    older = _run(
        "daily_features_job",
        dg.DagsterRunStatus.SUCCESS,
        **DAILY_RUN_TAGS,
        **{"dagster/partition": OLDER},
    )
    request = slo_request(older, NEWEST)
    assert isinstance(request, dg.RunRequest) and request.partition_key == OLDER


@pytest.mark.parametrize(
    "tags",
    [
        {**DAY},  # no daily priority: a manual run
        {**DAILY_RUN_TAGS, **DAY, "dagster/backfill": "abc"},
        {**DAILY_RUN_TAGS},  # a range of days
        {**DAILY_RUN_TAGS, **DAY, "dagster/will_retry": "true"},  # its retry's end counts
    ],
    ids=["manual", "backfill", "range", "will-retry"],
)
def test_runs_that_do_not_end_a_daily_pipeline_request_nothing(tags):
    run = _run("daily_training_job", dg.DagsterRunStatus.FAILURE, **tags)
    assert isinstance(slo_request(run, NEWEST), dg.SkipReason)
