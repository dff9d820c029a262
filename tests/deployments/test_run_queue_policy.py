"""The embedded instance and the Helm values carry one run-queue policy."""

import copy

import dagster as dg
import pytest
import yaml

from tests.support.queue_policy import (
    HELM,
    LOCAL,
    backfill_limits,
    policy_from_helm,
    policy_from_local,
    render_helm_instance,
)


def test_local_and_helm_encode_the_same_policy():
    assert policy_from_local() == policy_from_helm()


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


def test_helm_values_render_the_pool_limit_and_never_conflict():
    """What the official chart does with our values (templates/helpers/instance/
    _concurrency.tpl and _run-coordinator.tpl): the concurrency block renders only when
    enabled, carries the run limits and the pool, and the run coordinator carries only the
    dequeue settings; a limit set in both places makes rendering fail."""
    values = yaml.safe_load(HELM.read_text())
    assert values["concurrency"]["enabled"] is True
    rendered = render_helm_instance(values)
    assert rendered["concurrency"]["pools"]["default_limit"] >= 1
    assert rendered["concurrency"]["runs"]["max_concurrent_runs"] == 6
    assert set(rendered["run_coordinator"]["config"]) == {
        "dequeue_interval_seconds",
        "dequeue_use_threads",
        "dequeue_num_workers",
    }
    both = copy.deepcopy(values)
    queued = both["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    queued["maxConcurrentRuns"] = 6
    with pytest.raises(ValueError, match="maxConcurrentRuns set in both"):
        render_helm_instance(both)


def test_dead_runs_give_their_slots_back_in_both_deployments():
    """A killed run is failed (run_health sensor locally, the K8s launcher's health check in
    production) and its gpu slot is handed back: without free_slots_after_run_end_seconds
    Dagster never frees the slots of a run that ended without releasing them."""
    for policy in (policy_from_local(), policy_from_helm()):
        monitoring = policy["run_monitoring"]
        assert monitoring["enabled"] is True
        assert 0 < monitoring["free_slots_after_run_end_seconds"] <= 30
        assert monitoring["poll_interval_seconds"] <= 15


def test_helm_drops_nothing_we_set():
    """Every run-monitoring and run-retry setting reaches the rendered dagster.yaml."""
    values = yaml.safe_load(HELM.read_text())
    daemon = values["dagsterDaemon"]
    rendered = render_helm_instance(values)
    for chart_key in ("runMonitoring", "runRetries"):
        assert daemon[chart_key] == {"enabled": False}, "set these in additionalInstanceConfig"
    assert rendered["run_monitoring"]["max_runtime_seconds"] == 21600
    assert rendered["run_retries"]["retry_on_asset_or_op_failure"] is False


def test_dagster_loads_the_rendered_helm_instance_settings(tmp_path):
    """The rendered run coordinator, concurrency block, monitoring and retries, loaded by
    Dagster's own validation, as the daemon, the webserver and every run worker load them."""
    values = yaml.safe_load(HELM.read_text())
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(render_helm_instance(values)))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        config = instance.get_concurrency_config()
        assert config.run_queue_config.max_concurrent_runs == 6
        assert len(config.run_queue_config.tag_concurrency_limits) == 2
        assert config.pool_config.default_pool_limit == 4
        assert instance.run_coordinator.dequeue_interval_seconds == 2
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 5
        assert instance.run_retries_max_retries == 1
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        assert instance.telemetry_enabled is False


def test_dagster_refuses_run_limits_in_the_coordinator_next_to_a_pool(tmp_path):
    """Why the run limits moved to concurrency.runs: the chart renders the old layout without
    complaint, and every process that opens the instance then refuses it."""
    values = yaml.safe_load(HELM.read_text())
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = values["concurrency"].pop("runs")
    queued.update(maxConcurrentRuns=6, tagConcurrencyLimits=runs["tagConcurrencyLimits"])
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(render_helm_instance(values)))
    with pytest.raises(dg.DagsterInvalidConfigError, match="max_concurrent_runs"):
        dg.DagsterInstance.from_config(str(tmp_path))
