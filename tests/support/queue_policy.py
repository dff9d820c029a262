"""The run-queue policy as the two deployment files encode it, in one comparable shape."""

import yaml

from tests.support.environment import REPO_ROOT

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


def policy_from_helm() -> dict:
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
