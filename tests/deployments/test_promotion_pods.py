"""Which production pods hold the promotion identity, built by dagster-k8s itself.

The instance is the one the chart renders from deployments/k8s/values.yaml (its K8sRunLauncher
block); its launcher launches each production job's run, and the daily training job's executor
(dagster-k8s's own step handler, exactly as `k8s_job_executor` builds it for a job with no
executor config) launches each of that run's steps. Both talk through the real kubernetes
client to a loopback stand-in for the API server (tests/support/kubernetes_api.py), which
records the Jobs they would create and the API calls they make. Every Job passes Kubernetes'
schemas. Only dagster-k8s's loading of a kubeconfig instead of the in-cluster one differs from
the cluster (load_incluster_config: false, a kubeconfig naming the loopback server). Dagster
has no public way to hand a step to its step handler outside a run, so the execution plan and
the step-handler context are built from Dagster's internals, as dagster-k8s's own executor
tests build them (the pinned dagster 1.13.27 / dagster-k8s 0.29.27).

Asserted: a step's code runs with the promotion Secret only in the pods of the steps that move
the alias (the next-day guard, the promotion) and in the rollback job's run pod; the training
run's own pod, its dataset, trainer-launching and evaluation steps, every other run and the
trainer pods do not get it; only the step launcher may create Jobs in the release namespace,
with exactly the rights its executor uses, and the run workers may create nothing there.
"""

from __future__ import annotations

import functools
import json

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.execution.api import create_execution_plan
from dagster._core.execution.context.system import PlanData, PlanOrchestrationContext
from dagster._core.execution.context_creation_job import create_context_free_log_manager
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.step_delegating.step_handler.base import StepHandlerContext
from dagster._core.launcher import LaunchRunContext
from dagster._grpc.types import ExecuteStepArgs
from dagster_k8s import k8s_job_executor
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.executor import K8sStepHandler
from dagster_k8s.job import UserDefinedDagsterK8sConfig

from definitions import build_definitions
from resources.registry.promotion_identity import (
    PROMOTION_SECRET,
    STEP_LAUNCHER_SERVICE_ACCOUNT,
)
from resources.trainer.k8s_launcher import K8sTrainerLauncher
from sensors.schedules import DAILY_RUN_TAGS
from tests.support.environment import REPO_ROOT
from tests.support.helm_run_launcher import RELEASE_NAMESPACE, render_k8s_run_launcher
from tests.support.kubernetes_api import LoopbackKubernetesApi, loopback_kubernetes_api
from tests.support.kubernetes_schema import validated

K8S = REPO_ROOT / "deployments" / "k8s"
IMAGE = "registry.example/ml-template@sha256:" + "c" * 64
RUN_WORKER = "ml-training-run-worker"
# The steps whose code may move the production alias, and the job each belongs to.
ALIAS_MOVERS = {
    ("daily_training_job", "model_next_day_guard"),
    ("daily_training_job", "model_promotion"),
    ("rollback_model_job", "move_model_alias"),
}


@functools.cache
def _prod_definitions() -> dg.Definitions:
    return build_definitions("prod")


def _jobs() -> list[dg.JobDefinition]:
    return list(_prod_definitions().resolve_all_job_defs())


def _values() -> dict:
    return yaml.safe_load((K8S / "values.yaml").read_text())


# What ml-training-template-env gives a prod process: run config is resolved from it when a run
# and its plan are created (the values are never used here).
PROD_ENV = {
    "AWS_REGION": "us-east-1",
    "OBJECT_STORE_BUCKET": "bucket",
    "OBJECT_STORE_PREFIX": "ml/ctr",
    "WAREHOUSE_DSN": "postgresql://reader@warehouse/events",
    "TRAINER_IMAGE": IMAGE,
}


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    for name, value in PROD_ENV.items():
        monkeypatch.setenv(name, value)
    """(instance, loopback API): the chart's run launcher, pointed at the loopback server."""
    with loopback_kubernetes_api(tmp_path) as api:
        launcher = render_k8s_run_launcher(_values()) | {
            "load_incluster_config": False,
            "kubeconfig_file": str(api.kubeconfig),
        }
        (tmp_path / "dagster.yaml").write_text(
            yaml.safe_dump(
                {
                    "run_launcher": {
                        "module": "dagster_k8s",
                        "class": "K8sRunLauncher",
                        "config": launcher,
                    },
                    "telemetry": {"enabled": False},
                }
            )
        )
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            yield instance, api


def _origin(job_name: str):
    """What the code server (the chart's user deployment, DAGSTER_CURRENT_IMAGE) gives a run."""
    repository = ReconstructableRepository.for_file(
        "definitions.py", "defs", working_directory="/opt/project", container_image=IMAGE
    )
    return repository.get_reconstructable_job(job_name).get_python_origin()


# The one job whose config has no defaults: what the launchpad asks for.
RUN_CONFIG = {
    "rollback_model_job": {
        "ops": {"move_model_alias": {"config": {"to_version": "previous", "why": "a test"}}}
    }
}


def _plan(job: dg.JobDefinition):
    return create_execution_plan(job, run_config=RUN_CONFIG.get(job.name))


def _run(instance: dg.DagsterInstance, job: dg.JobDefinition) -> dg.DagsterRun:
    """A run as the daily trigger creates it: the job's tags and the daily ones."""
    return instance.create_run_for_job(
        job_def=job,
        execution_plan=_plan(job),
        run_config=RUN_CONFIG.get(job.name),
        tags={**job.tags, **DAILY_RUN_TAGS},
        job_code_origin=_origin(job.name),
    )


def _single(api: LoopbackKubernetesApi, before: int) -> dict:
    [body] = [r.body for r in api.requests[before:] if r.method == "POST" and r.rbac()[2] == "jobs"]
    return validated(body)


def _run_pod_job(instance: dg.DagsterInstance, api: LoopbackKubernetesApi, job) -> dict:
    """The run worker's Job, as the K8sRunLauncher creates it."""
    before = len(api.requests)
    instance.run_launcher.launch_run(
        LaunchRunContext(dagster_run=_run(instance, job), workspace=None)
    )
    return _single(api, before)


def _step_handler(api: LoopbackKubernetesApi) -> K8sStepHandler:
    """k8s_job_executor's handler for an empty executor config (assets/jobs.py gives none)."""
    return K8sStepHandler(
        image=None,
        container_context=K8sContainerContext(
            run_k8s_config=UserDefinedDagsterK8sConfig.from_dict({})
        ),
        load_incluster_config=False,
        kubeconfig_file=str(api.kubeconfig),
        per_step_k8s_config={},
    )


def _step_contexts(instance: dg.DagsterInstance, job: dg.JobDefinition):
    run = _run(instance, job)
    plan = _plan(job)
    plan_context = PlanOrchestrationContext(
        plan_data=PlanData(
            job=job,
            dagster_run=run,
            instance=instance,
            execution_plan=plan,
            raise_on_error=True,
            retry_mode=RetryMode.DISABLED,
        ),
        log_manager=create_context_free_log_manager(instance, run),
        executor=None,  # type: ignore[arg-type]  # the step handler never reads it
        output_capture=None,
    )
    origin = _origin(job.name)
    for step in plan.steps:
        yield (
            step.key,
            StepHandlerContext(
                instance=instance,
                plan_context=plan_context,
                steps=plan.steps,
                execute_step_args=ExecuteStepArgs(origin, run.run_id, [step.key]),
                dagster_run=run,
            ),
        )


def _step_jobs(instance, api, job) -> dict[str, dict]:
    handler = _step_handler(api)
    jobs = {}
    for step_key, context in _step_contexts(instance, job):
        before = len(api.requests)
        list(handler.launch_step(context))
        jobs[step_key] = _single(api, before)
    return jobs


def _pod_spec(k8s_job: dict) -> dict:
    return k8s_job["spec"]["template"]["spec"]


def _secrets(k8s_job: dict) -> set[str]:
    [container] = _pod_spec(k8s_job)["containers"]
    names = {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
    names |= {
        v["secret"]["secretName"] for v in _pod_spec(k8s_job).get("volumes", []) if "secret" in v
    }
    names |= {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in container.get("env") or []
        if "secretKeyRef" in (e.get("valueFrom") or {})
    }
    return names


def test_prod_runs_every_job_in_process_but_the_daily_training_job():
    executors = {job.name: job.executor_def for job in _jobs()}
    assert executors.pop("daily_training_job") is k8s_job_executor  # unconfigured: see above
    assert {e.name for e in executors.values()} == {dg.in_process_executor.name}, executors


def test_only_the_pods_of_steps_that_move_the_alias_hold_the_promotion_secret(cluster):
    """Where each step's code runs: the run pod (in-process jobs) or its own step pod."""
    instance, api = cluster
    holders, runs_without = set(), set()
    for job in _jobs():
        run_job = _run_pod_job(instance, api, job)
        if job.executor_def is k8s_job_executor:
            assert PROMOTION_SECRET not in _secrets(run_job), f"{job.name}'s own pod"
            pods = _step_jobs(instance, api, job)
        else:
            pods = {node.name: run_job for node in job.graph.nodes}
        for step, pod in pods.items():
            if PROMOTION_SECRET in _secrets(pod):
                holders.add((job.name, step))
            elif step in {"model_promotion", "move_model_alias"}:
                runs_without.add(job.name)
    assert holders == ALIAS_MOVERS
    # A promotion materialized ad hoc from the asset graph (the implicit asset job) runs without
    # the identity and fails closed: nothing is written (tests/deployments/test_iam_enforcement.py).
    assert runs_without == {"__ASSET_JOB"}


def test_the_daily_training_steps_run_as_the_run_workers_and_its_pod_as_the_step_launcher(
    cluster,
):
    instance, api = cluster
    job = _prod_definitions().resolve_job_def("daily_training_job")
    run_job = _run_pod_job(instance, api, job)
    assert _pod_spec(run_job)["serviceAccountName"] == STEP_LAUNCHER_SERVICE_ACCOUNT
    steps = _step_jobs(instance, api, job)
    assert set(steps) == {
        "training_dataset",
        "model_next_day_guard",
        "model_checkpoint",
        "model_evaluation",
        "model_promotion",
    }
    for step, k8s_job in steps.items():
        spec = _pod_spec(k8s_job)
        # Step pods take the run launcher's pod config, not the run's tags.
        assert spec["serviceAccountName"] == RUN_WORKER, step
        assert spec["securityContext"]["runAsNonRoot"] is True, step
        [container] = spec["containers"]
        assert container["image"] == IMAGE
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, step
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], step
        assert k8s_job["spec"]["backoffLimit"] == 0, step
        # The run workers' own Secret (warehouse, bucket) on every step, as on the run pod.
        assert "ml-training-template-env" in _secrets(k8s_job), step
        assert container["args"][:3] == ["dagster", "api", "execute_step"], step


def _rbac(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def _grants(role: dict) -> set[tuple[str, str, str, str]]:
    return {
        (role["metadata"]["namespace"], group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_step_launcher_may_make_exactly_the_calls_of_the_executor(cluster):
    """Launch every step, check its health, terminate it: each API call the executor makes is
    granted by step-launcher-rbac.yaml, and the Role grants nothing the executor does not use."""
    instance, api = cluster
    job = _prod_definitions().resolve_job_def("daily_training_job")
    handler = _step_handler(api)
    before = len(api.requests)
    for _, context in _step_contexts(instance, job):
        list(handler.launch_step(context))
        assert handler.check_step_health(context).is_healthy
        list(handler.terminate_step(context))
    used = {request.rbac() for request in api.requests[before:]}
    role, binding = (validated(doc) for doc in _rbac("step-launcher-rbac.yaml"))
    assert used == _grants(role)
    assert {namespace for namespace, *_ in used} == {RELEASE_NAMESPACE}
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": STEP_LAUNCHER_SERVICE_ACCOUNT, "namespace": "dagster"}
    ]
    accounts = {doc["metadata"]["name"]: doc for doc in _rbac("service-accounts.yaml")}
    # It runs no asset code and touches no object: no cloud role.
    assert not accounts[STEP_LAUNCHER_SERVICE_ACCOUNT].get("metadata", {}).get("annotations")


def test_no_pod_that_runs_other_steps_may_create_pods_where_the_secret_lives():
    """Whoever may create a Job or pod in a namespace can mount that namespace's Secrets: the
    run workers (every step but the daily training run's alias movers) have no such right in
    the release namespace; their trainer rights are in the trainer namespace."""
    creating = {("batch", "jobs"), ("", "pods"), ("apps", "deployments"), ("batch", "cronjobs")}
    bound: dict[str, set] = {}
    for name in ("trainer-rbac.yaml", "step-launcher-rbac.yaml"):
        docs = _rbac(name)
        roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
        for binding in (d for d in docs if d["kind"] == "RoleBinding"):
            role = roles[binding["roleRef"]["name"]]
            for subject in binding["subjects"]:
                bound.setdefault(subject["name"], set()).update(_grants(role))
    release_creates = {
        account
        for account, grants in bound.items()
        for namespace, group, resource, verb in grants
        if namespace == RELEASE_NAMESPACE and (group, resource) in creating and verb == "create"
    }
    assert release_creates == {STEP_LAUNCHER_SERVICE_ACCOUNT}
    trainer_namespaces = {ns for ns, *_ in bound[RUN_WORKER]}
    assert trainer_namespaces == {K8sTrainerLauncher.model_fields["namespace"].default}
    assert RELEASE_NAMESPACE not in trainer_namespaces
    accounts = {d["metadata"]["name"]: validated(d) for d in _rbac("service-accounts.yaml")}
    assert accounts["ml-training-trainer"]["metadata"]["namespace"] in trainer_namespaces
    for name in (RUN_WORKER, STEP_LAUNCHER_SERVICE_ACCOUNT):
        assert accounts[name]["metadata"]["namespace"] == RELEASE_NAMESPACE


def test_the_promotion_secret_is_not_the_launchers_or_the_code_servers():
    values = _values()
    launcher = render_k8s_run_launcher(values)
    assert PROMOTION_SECRET not in launcher.get("env_secrets", [])
    assert PROMOTION_SECRET not in json.dumps(launcher.get("run_k8s_config", {}))
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert PROMOTION_SECRET not in json.dumps(deployment)
