"""The run-failure sensor alerts once a failed run will not be retried, and only then.

Real failing runs on a real instance configured with run retries: Dagster itself decides and
tags `dagster/will_retry` on each failure; the sensor is evaluated on the failure event.
"""

import logging

import dagster as dg
import pytest

from resources.notifier import Notifier
from sensors.run_failure import run_failure_alert_sensor

SENSOR = run_failure_alert_sensor(dg.DefaultSensorStatus.STOPPED)


@dg.op
def load_upstream() -> None:
    raise RuntimeError("connection to warehouse refused")


@dg.job(name="nightly_job")
def nightly_job():
    load_upstream()


def _home(tmp_path) -> str:
    home = tmp_path / "home"
    home.mkdir()
    return str(home)


def _retries(retry_on_op_failure: bool) -> dict:
    return {
        "run_retries": {
            "enabled": True,
            "max_retries": 1,
            "retry_on_asset_or_op_failure": retry_on_op_failure,
        }
    }


def _fail(instance, **tags):
    result = nightly_job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE]
    return instance.get_run_by_id(result.run_id), failure


def _evaluate(instance, run, failure, caplog):
    context = dg.build_run_status_sensor_context(
        sensor_name=SENSOR.name,
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=run,
        resources={"notifier": Notifier()},
    ).for_run_failure()
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="ml_template.alerts"):
        result = SENSOR(context)
    return result, [r.getMessage() for r in caplog.records if r.name == "ml_template.alerts"]


def test_a_failure_that_run_retries_will_retry_does_not_alert(tmp_path, caplog):
    with dg.instance_for_test(temp_dir=_home(tmp_path), overrides=_retries(True)) as instance:
        run, failure = _fail(instance)
        assert run.tags["dagster/will_retry"] == "true"
        result, alerts = _evaluate(instance, run, failure, caplog)
    assert isinstance(result, dg.SkipReason) and "will be retried" in result.skip_message
    assert alerts == []


@pytest.mark.parametrize("retries", [_retries(False), {}], ids=["not-retried", "retries-off"])
def test_a_failure_that_will_not_be_retried_alerts_with_the_run_and_the_error(
    tmp_path, caplog, retries
):
    with dg.instance_for_test(temp_dir=_home(tmp_path), overrides=retries) as instance:
        run, failure = _fail(instance, **{"dagster/partition": "2026-11-05"})
        assert run.tags.get("dagster/will_retry", "false") == "false"
        _, alerts = _evaluate(instance, run, failure, caplog)
    [alert] = alerts
    assert alert.startswith("[run_failed] nightly_job partition 2026-11-05:")
    assert f"run {run.run_id} failed, not retried" in alert
    assert "load_upstream: " in alert and "connection to warehouse refused" in alert


def test_the_last_retry_alerts_that_retries_are_exhausted(tmp_path, caplog):
    with dg.instance_for_test(temp_dir=_home(tmp_path), overrides=_retries(True)) as instance:
        first, _ = _fail(instance)
        assert first.tags["dagster/will_retry"] == "true"
        # What the retry daemon launches: a re-execution of the failed run, with the tags its
        # create_reexecuted_run writes (execute_job's re-execution leaves the lineage tags out,
        # and Dagster counts a run's attempts by them).
        with dg.execute_job(
            dg.reconstructable(nightly_job),
            instance=instance,
            tags={
                "dagster/retry_number": "1",
                "dagster/parent_run_id": first.run_id,
                "dagster/root_run_id": first.run_id,
            },
            reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, instance),
        ) as result:
            assert not result.success
            [failure] = [
                e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE
            ]
        retry = instance.get_run_by_id(result.run_id)
        assert retry.root_run_id == first.run_id
        assert retry.tags["dagster/will_retry"] == "false", retry.tags  # max_retries 1 is used up
        _, alerts = _evaluate(instance, retry, failure, caplog)
    [alert] = alerts
    assert f"run {retry.run_id} failed, retries exhausted after attempt 2" in alert
