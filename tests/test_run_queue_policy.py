"""The embedded instance and the Helm values carry one run-queue policy."""

import dagster as dg
import yaml

from tests.conftest import REPO_ROOT

LOCAL = REPO_ROOT / "deployments" / "local" / "dagster.yaml"
HELM = REPO_ROOT / "deployments" / "k8s" / "values.yaml"


def policy_from_local() -> dict:
    config = yaml.safe_load(LOCAL.read_text())
    runs, queue = config["concurrency"]["runs"], config["run_queue"]
    return {
        "max_concurrent_runs": runs["max_concurrent_runs"],
        "tag_concurrency_limits": runs["tag_concurrency_limits"],
        "dequeue": (
            queue["dequeue_interval_seconds"],
            queue["dequeue_use_threads"],
            queue["dequeue_num_workers"],
        ),
        "pool_granularity": config["concurrency"]["pools"]["granularity"],
        "run_retries": config["run_retries"],
        "run_monitoring": config["run_monitoring"],
    }


def _policy_from_helm() -> dict:
    values = yaml.safe_load(HELM.read_text())
    daemon = values["dagsterDaemon"]
    queue = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    retries, monitoring = daemon["runRetries"], daemon["runMonitoring"]
    return {
        "max_concurrent_runs": queue["maxConcurrentRuns"],
        "tag_concurrency_limits": queue["tagConcurrencyLimits"],
        "dequeue": (
            queue["dequeueIntervalSeconds"],
            queue["dequeueUseThreads"],
            queue["dequeueNumWorkers"],
        ),
        "pool_granularity": values["concurrency"]["pools"]["granularity"],
        "run_retries": {
            "enabled": retries["enabled"],
            "max_retries": retries["maxRetries"],
            "retry_on_asset_or_op_failure": retries["retryOnAssetOrOpFailure"],
        },
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "max_runtime_seconds": monitoring["maxRuntimeSeconds"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
        },
    }


def test_local_and_helm_encode_the_same_policy():
    assert policy_from_local() == _policy_from_helm()


def backfill_limits(limits: list[dict]) -> tuple[int, int]:
    """(limit over all backfills together, limit per backfill)."""
    backfill = [limit for limit in limits if limit["key"] == "dagster/backfill"]
    together = next(limit["limit"] for limit in backfill if "value" not in limit)
    each = next(
        limit["limit"]
        for limit in backfill
        if limit.get("value") == {"applyLimitPerUniqueValue": True}
    )
    return together, each


def test_the_policy_keeps_a_reserve_for_the_daily_run():
    policy = policy_from_local()
    together, each = backfill_limits(policy["tag_concurrency_limits"])
    assert each < together < policy["max_concurrent_runs"]
    assert policy["run_retries"]["retry_on_asset_or_op_failure"] is False
    assert policy["run_monitoring"]["max_runtime_seconds"] > 0


def test_dagster_loads_the_local_policy_as_written(tmp_path):
    (tmp_path / "dagster.yaml").write_text(LOCAL.read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        config = instance.get_concurrency_config()
        coordinator = instance.run_coordinator
        assert config.run_queue_config.max_concurrent_runs == 6
        assert len(config.run_queue_config.tag_concurrency_limits) == 2
        assert config.pool_config.default_pool_limit == 1
        assert coordinator.dequeue_interval_seconds == 2
        assert instance.run_retries_max_retries == 1
        assert instance.run_monitoring_max_runtime_seconds == 21600
