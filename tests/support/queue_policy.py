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


def render_helm_instance(values: dict) -> dict:
    """The parts of dagster.yaml that the official chart (1.13.27,
    templates/configmap-instance.yaml) renders from our values, key by key as its template does:
    run_monitoring only enabled/start_timeout/cancel_timeout/max_resume/poll_interval/
    free_slots; run_retries only enabled/max_retries; additionalInstanceConfig appended whole.
    Anything else set under dagsterDaemon.runMonitoring or runRetries is silently dropped."""
    daemon, rendered = values["dagsterDaemon"], {}
    monitoring = daemon.get("runMonitoring") or {}
    if monitoring.get("enabled"):
        rendered["run_monitoring"] = {
            "enabled": True,
            "start_timeout_seconds": monitoring.get("startTimeoutSeconds"),
            "poll_interval_seconds": monitoring.get("pollIntervalSeconds"),
            "free_slots_after_run_end_seconds": monitoring.get("freeSlotsAfterRunEndSeconds"),
        }
    retries = daemon.get("runRetries") or {}
    if retries.get("enabled"):
        rendered["run_retries"] = {"enabled": True, "max_retries": retries.get("maxRetries")}
    for key, block in (values.get("additionalInstanceConfig") or {}).items():
        if key in rendered:
            raise ValueError(f"dagster.yaml would hold {key!r} twice")
        rendered[key] = block
    return rendered


def policy_from_helm() -> dict:
    values = yaml.safe_load(HELM.read_text())
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    instance = render_helm_instance(values)
    return {
        "max_concurrent_runs": queue["maxConcurrentRuns"],
        "tag_concurrency_limits": queue["tagConcurrencyLimits"],
        "dequeue": (
            queue["dequeueIntervalSeconds"],
            queue["dequeueUseThreads"],
            queue["dequeueNumWorkers"],
        ),
        "pool_granularity": values["concurrency"]["pools"]["granularity"],
        "run_retries": instance["run_retries"],
        "run_monitoring": instance["run_monitoring"],
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
