"""Shared by the SLO tests.

Real daily-run records in well under a second: two stand-in jobs named like the daily jobs (the
features job does nothing; the training job reports a CUDA trainer and promotes, or fails),
run in process on a real instance, and `pipeline_slo` materialized on top of them (the real
pipeline through the real daemon is tests/assets/slo/test_slo_e2e.py). And a Prometheus
scrape over HTTP, parsed by prometheus_client's own parser.
"""

import datetime as dt
import time
import urllib.error
import urllib.request

import dagster as dg
from prometheus_client.parser import text_string_to_metric_families

from assets.partitions import daily_partitions
from assets.slo.asset import pipeline_slo
from assets.slo.tags import REQUESTED_AT_TAG
from sensors.schedules import DAILY_RUN_TAGS


@dg.op
def approve_features() -> None:
    time.sleep(0.05)


class StandInTraining(dg.Config):
    fail: bool = False


@dg.op
def train_and_promote(context: dg.OpExecutionContext, config: StandInTraining) -> None:
    day = context.partition_key
    context.log_event(
        dg.AssetMaterialization(
            "model_checkpoint",
            partition=day,
            metadata={"device": "cuda:0", "training_run": dg.MetadataValue.json({"world_size": 2})},
        )
    )
    time.sleep(0.1)
    if config.fail:
        raise dg.Failure("stand-in evaluation refused the candidate", allow_retries=False)
    context.log_event(dg.AssetMaterialization("model_promotion", partition=day))


@dg.job(name="daily_features_job", partitions_def=daily_partitions)
def features_job():
    approve_features()


@dg.job(name="daily_training_job", partitions_def=daily_partitions)
def training_job():
    train_and_promote()


def home(tmp_path) -> str:
    """An empty DAGSTER_HOME for `dg.instance_for_test`."""
    path = tmp_path / "home"
    path.mkdir()
    return str(path)


def run_daily(instance, job, day: str, requested_seconds_ago: float, **config) -> dg.RunRecord:
    """One daily run of `job` for `day`, requested by a sensor tick that many seconds ago."""
    requested = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=requested_seconds_ago)
    result = job.execute_in_process(
        instance=instance,
        partition_key=day,
        tags={**DAILY_RUN_TAGS, REQUESTED_AT_TAG: requested.isoformat()},
        run_config={"ops": {"train_and_promote": {"config": config}}} if config else None,
        raise_on_error=False,
    )
    return instance.get_run_record_by_id(result.run_id)


def materialize_slo(instance, resources, day: str, **config) -> tuple[dict, dict]:
    """`pipeline_slo` for `day`: its metadata values and its check evaluations by name."""
    result = dg.materialize(
        [pipeline_slo],
        instance=instance,
        partition_key=day,
        resources=resources,
        run_config={"ops": {"pipeline_slo": {"config": config}}},
    )
    [materialization] = [e.materialization for e in result.get_asset_materialization_events()]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    return {k: v.value for k, v in materialization.metadata.items()}, checks


def scrape(port: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                return reply.read().decode()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(metric name, sorted labels) -> value, parsed by prometheus_client."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
