"""The code location: loads cleanly, one schedule with queue priority, the layout's promises."""

import datetime as dt
import os
import subprocess
import sys

import dagster as dg
import pytest

from assets.features.logic import FEATURE_TABLES
from definitions import build_definitions
from sensors.schedules import DAILY_RUN_PRIORITY
from tests.support.environment import REPO_ROOT

GROUPS = {
    "daily_events": "sources",
    # The project's feature tables, whichever FEATURE_TABLES declares.
    **{table.name: "features" for table in FEATURE_TABLES},
    "training_dataset": "training",
    "model_next_day_guard": "training",
    "model_checkpoint": "training",
    "model_evaluation": "training",
    "model_promotion": "training",
    "production_model": "training",
    "pipeline_slo": "observability",
}
# The one asset that is not per day: which model version serves now.
UNPARTITIONED = {"production_model"}


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("deployment", ["local", "prod"])
def test_definitions_load_without_warnings(deployment):
    # -W error turns any warning raised while importing and building our definitions into a
    # failure; prod builds without its variables set because EnvVars resolve only at run time.
    done = _run(
        "import definitions; d = definitions.build_definitions(); "
        "d.get_repository_def().load_all_definitions(); print('loaded')",
        DAGSTER_DEPLOYMENT=deployment,
    )
    assert done.returncode == 0, done.stderr
    assert "loaded" in done.stdout


def test_workspace_loads_one_code_location(tmp_path):
    done = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "Validation successful for code location ml_training_template" in output


# What only production needs: imported when the prod resources are built, never on a laptop.
PRODUCTION_ONLY = ("dagster_k8s", "kubernetes", "dagster_aws", "boto3", "botocore")


@pytest.mark.parametrize("deployment", ["local", "prod"])
def test_only_production_imports_the_kubernetes_and_aws_clients(deployment):
    done = _run(
        "import sys, definitions; definitions.build_definitions(); "
        f"print(sorted(m for m in {PRODUCTION_ONLY} if m in sys.modules))",
        DAGSTER_DEPLOYMENT=deployment,
    )
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.strip().splitlines()[-1]
    # Production's daily training job names dagster-k8s's step executor (a pod per step), so
    # prod loads it with the definitions; a laptop loads none of them.
    expected = "[]" if deployment == "local" else str(sorted(PRODUCTION_ONLY))
    assert loaded == expected, f"{deployment} loaded {loaded}"


@pytest.mark.parametrize("deployment", ["local", "prod"])
def test_runs_execute_their_steps_in_the_run_worker(deployment):
    # A process per step would start an interpreter and load this code location per step. The
    # implicit asset job is what the UI's materializations and asset backfills run. The one
    # exception is production's daily training job: a pod per step, so that only its
    # alias-moving steps hold the promotion identity (tests/deployments/test_promotion_pods.py
    # builds those pods); on a laptop it runs in-process like the rest.
    repository = build_definitions(deployment).get_repository_def()
    executors = {job.name: job.executor_def.name for job in repository.get_all_jobs()}
    assert {"daily_features_job", "daily_training_job", "__ASSET_JOB"} <= set(executors)
    if deployment == "prod":
        assert executors.pop("daily_training_job") == "k8s"
    assert set(executors.values()) == {dg.in_process_executor.name}, executors


def test_importing_definitions_reads_no_environment():
    done = _run("import definitions; print('imported')", DAGSTER_DEPLOYMENT="not-a-deployment")
    assert done.returncode == 0, done.stderr
    building = _run("import definitions; definitions.defs()", DAGSTER_DEPLOYMENT="staging")
    assert building.returncode != 0
    assert "DAGSTER_DEPLOYMENT='staging' is not one of" in building.stderr


def test_every_asset_has_a_description_group_and_daily_partitions():
    defs = build_definitions("local")
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    assert {name: spec.group_name for name, spec in specs.items()} == GROUPS
    for name, spec in specs.items():
        assert spec.description and "\n" not in spec.description
        if name in UNPARTITIONED:
            assert spec.partitions_def is None
        else:
            assert isinstance(spec.partitions_def, dg.DailyPartitionsDefinition), name


def test_every_gated_asset_declares_blocking_gate_checks():
    defs = build_definitions("local")
    checks = {}
    for key in defs.resolve_asset_graph().asset_check_keys:
        checks.setdefault(key.asset_key.to_user_string(), set()).add(key.name)
    assert checks["daily_events"] >= {"schema_contract", "completeness", "watermark", "volume"}
    for name in (table.name for table in FEATURE_TABLES):
        assert checks[name] >= {"schema_contract", "unique_key", "null_rate", "value_ranges"}
        assert "daily_partition_landed" in checks[name]


def test_gated_assets_hand_no_value_to_an_io_manager():
    # They store their own output (write-audit-publish); the UI shows their output as Nothing.
    graph = build_definitions("local").resolve_asset_graph()
    for name in ("daily_events", *(table.name for table in FEATURE_TABLES)):
        assets_def = graph.get(dg.AssetKey(name)).assets_def
        output = assets_def.op.output_def_named(
            assets_def.get_output_name_for_asset_key(dg.AssetKey(name))
        )
        assert output.dagster_type.is_nothing, name


def test_schedule_carries_priority_and_the_job_does_not():
    defs = build_definitions("local")
    job = defs.resolve_job_def("daily_features_job")
    assert "dagster/priority" not in (job.tags or {})
    assert "dagster/priority" not in (job.run_tags or {})

    schedule = defs.resolve_schedule_def("daily_features_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    tick_time = dt.datetime(2026, 11, 10, 6, 0, tzinfo=dt.UTC)
    with dg.build_schedule_context(scheduled_execution_time=tick_time) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert len(requests) == 1
    assert requests[0].partition_key == "2026-11-09"
    assert requests[0].tags["dagster/priority"] == DAILY_RUN_PRIORITY


def test_prod_starts_its_sensor_and_deadline_checks_and_keeps_the_fallback_off():
    defs = build_definitions("prod")
    [sensor] = [s for s in defs.sensors if s.name == "upstream_completeness_sensor"]
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    training_trigger = defs.resolve_sensor_def("daily_training_sensor")
    assert training_trigger.default_status == dg.DefaultSensorStatus.RUNNING
    assert training_trigger.job_name == "daily_training_job"
    assert (
        defs.resolve_schedule_def("freshness_checks_schedule").default_status
        == dg.DefaultScheduleStatus.RUNNING
    )
    assert (
        defs.resolve_schedule_def("daily_features_schedule").default_status
        == dg.DefaultScheduleStatus.STOPPED
    )
