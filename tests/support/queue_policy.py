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


# The chart's defaults (helm/dagster/values.yaml) for the run coordinator keys our values may
# leave out. blockOpConcurrencyLimitedRuns is taken as set: the worst case, since with
# concurrency.pools any op_concurrency_slot_buffer in the coordinator makes Dagster refuse the
# instance; values.yaml nulls it, which Helm's merge turns into "absent".
CHART_QUEUED_RUN_COORDINATOR_DEFAULTS = {
    "maxConcurrentRuns": None,
    "tagConcurrencyLimits": [],
    "dequeueIntervalSeconds": None,
    "dequeueUseThreads": True,
    "dequeueNumWorkers": None,
    "blockOpConcurrencyLimitedRuns": {"enabled": False, "opConcurrencySlotBuffer": 0},
}


def helm_merge(defaults: dict, overrides: dict) -> dict:
    """Helm's coalescing of user values over chart defaults: maps merge key by key, anything
    else replaces, and a null removes the default's key."""
    merged = dict(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _queued_run_coordinator(values: dict) -> dict:
    """dagsterDaemon.runCoordinator.config.queuedRunCoordinator as the chart sees it."""
    return helm_merge(
        CHART_QUEUED_RUN_COORDINATOR_DEFAULTS,
        values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"],
    )


def render_run_coordinator(values: dict) -> dict:
    """templates/helpers/instance/_run-coordinator.tpl (QueuedRunCoordinator), key by key."""
    queued = _queued_run_coordinator(values)
    concurrency_enabled = bool((values.get("concurrency") or {}).get("enabled"))
    coordinator = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}
    if not any(v not in (None, "", [], {}, False) for v in queued.values()):
        return coordinator
    config = {}
    if not concurrency_enabled or queued.get("maxConcurrentRuns") is not None:
        limit = queued.get("maxConcurrentRuns")
        config["max_concurrent_runs"] = -1 if limit is None else limit
    if queued.get("tagConcurrencyLimits"):
        config["tag_concurrency_limits"] = queued["tagConcurrencyLimits"]
    for key, rendered_as in (
        ("dequeueIntervalSeconds", "dequeue_interval_seconds"),
        ("dequeueUseThreads", "dequeue_use_threads"),
        ("dequeueNumWorkers", "dequeue_num_workers"),
    ):
        if queued.get(key):
            config[rendered_as] = queued[key]
    block = queued.get("blockOpConcurrencyLimitedRuns")
    if block:
        config["block_op_concurrency_limited_runs"] = {
            "enabled": block.get("enabled"),
            "op_concurrency_slot_buffer": block.get("opConcurrencySlotBuffer"),
        }
    return {**coordinator, "config": config}


def render_concurrency(values: dict) -> dict | None:
    """templates/helpers/instance/_concurrency.tpl, rendered only when concurrency.enabled; its
    `fail`s (a limit set both here and in the run coordinator) raise ValueError."""
    concurrency = values.get("concurrency") or {}
    if not concurrency.get("enabled"):
        return None
    pools, runs = concurrency.get("pools") or {}, concurrency.get("runs") or {}
    queued = _queued_run_coordinator(values)
    if runs.get("maxConcurrentRuns") is not None and queued.get("maxConcurrentRuns") is not None:
        raise ValueError("maxConcurrentRuns set in both concurrency.runs and the run coordinator")
    if runs.get("tagConcurrencyLimits") and queued.get("tagConcurrencyLimits"):
        raise ValueError("tagConcurrencyLimits set in both concurrency.runs and the coordinator")
    rendered: dict = {}
    pool_keys = (
        ("defaultLimit", "default_limit"),
        ("granularity", "granularity"),
        ("opGranularityRunBuffer", "op_granularity_run_buffer"),
    )
    if any(pools.get(key) is not None for key, _ in pool_keys):
        rendered["pools"] = {
            rendered_as: pools[key] for key, rendered_as in pool_keys if pools.get(key) is not None
        }
    if runs.get("maxConcurrentRuns") is not None or runs.get("tagConcurrencyLimits"):
        rendered["runs"] = {}
        if runs.get("maxConcurrentRuns") is not None:
            rendered["runs"]["max_concurrent_runs"] = runs["maxConcurrentRuns"]
        if runs.get("tagConcurrencyLimits"):
            rendered["runs"]["tag_concurrency_limits"] = [
                {k: limit[k] for k in ("key", "value", "limit") if limit.get(k)}
                for limit in runs["tagConcurrencyLimits"]
            ]
    return rendered


def render_helm_instance(values: dict) -> dict:
    """The parts of dagster.yaml that the official chart (1.13.27,
    templates/configmap-instance.yaml) renders from our values, key by key as its templates do:
    the run coordinator and the concurrency block (above); run_monitoring only
    enabled/start_timeout/cancel_timeout/max_resume/poll_interval/free_slots; run_retries only
    enabled/max_retries; additionalInstanceConfig appended whole. Anything else set under
    dagsterDaemon.runMonitoring or runRetries is silently dropped."""
    daemon = values["dagsterDaemon"]
    rendered = {"run_coordinator": render_run_coordinator(values)}
    concurrency = render_concurrency(values)
    if concurrency is not None:
        rendered["concurrency"] = concurrency
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
    rendered["telemetry"] = {"enabled": (values.get("telemetry") or {}).get("enabled", True)}
    for key, block in (values.get("additionalInstanceConfig") or {}).items():
        if key in rendered:
            raise ValueError(f"dagster.yaml would hold {key!r} twice")
        rendered[key] = block
    return rendered


def policy_from_helm() -> dict:
    """The policy as the rendered dagster.yaml holds it (not as values.yaml spells it)."""
    values = yaml.safe_load(HELM.read_text())
    instance = render_helm_instance(values)
    runs, queue = instance["concurrency"]["runs"], instance["run_coordinator"]["config"]
    return {
        "max_concurrent_runs": runs["max_concurrent_runs"],
        "tag_concurrency_limits": runs["tag_concurrency_limits"],
        "dequeue": (
            queue["dequeue_interval_seconds"],
            queue["dequeue_use_threads"],
            queue["dequeue_num_workers"],
        ),
        "pool_granularity": instance["concurrency"]["pools"]["granularity"],
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
