"""The production training pod and Job, built with dagster-k8s's own code, field by field."""

import json

import dagster as dg
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)
from dagster_k8s.pipes import build_pod_body

from assets.model.model_checkpoint import model_checkpoint
from resources.factory import build_resources
from resources.trainer.k8s_launcher import K8sTrainerLauncher
from resources.trainer.launcher import trainer_command
from resources.trainer.pipes_bridge import describe_progress
from tests.support.gpu_inventory import INVENTORY

IMAGE = "registry.example/ml-template@sha256:" + "a" * 64


def _pod(launcher: K8sTrainerLauncher):
    return build_pod_body(
        pod_name="dagster-pipes-trainer",
        image=launcher.image,
        command=launcher.command(),
        env_vars={"DAGSTER_PIPES_CONTEXT": "ctx"},
        base_pod_meta=None,
        base_pod_spec=launcher.pod_spec(),
    )


def test_gpu_pod_spec_field_by_field():
    launcher = K8sTrainerLauncher(
        image=IMAGE,
        gpus=2,
        inventory=INVENTORY,
        service_account_name="trainer",
        env_secret="trainer-s3",
        active_deadline_seconds=7200,
    )
    pod = _pod(launcher)
    spec = pod.spec
    assert spec.restart_policy == "Never"
    assert spec.active_deadline_seconds == 7200
    # SIGTERM (preemption, drain) to SIGKILL: time to finish a step and write a checkpoint.
    assert spec.termination_grace_period_seconds == 120
    # GPU nodes, of the flavor the shape was validated against (Kueue's ResourceFlavor labels).
    assert spec.node_selector == {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
    }
    [toleration] = spec.tolerations
    assert (toleration.key, toleration.operator, toleration.effect) == (
        "nvidia.com/gpu",
        "Exists",
        "NoSchedule",
    )
    assert spec.service_account_name == "trainer"
    [container] = spec.containers
    assert container.image == IMAGE
    assert container.command == ["python", "-m", "resources.trainer.pipes_bridge"]
    assert container.resources.limits == {"nvidia.com/gpu": "2", "cpu": "4", "memory": "16Gi"}
    assert container.resources.requests == container.resources.limits
    assert container.env_from[0].secret_ref.name == "trainer-s3"
    assert {e.name for e in container.env} >= {"DAGSTER_PIPES_CONTEXT"}


def test_multi_gpu_pods_run_one_trainer_process_per_gpu():
    command = trainer_command("python", ["--store-root", "/data"], processes=2)
    assert command[:5] == ["python", "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2"]  # fmt: skip
    assert command[5:] == ["-m", "training", "--store-root", "/data"]
    assert trainer_command("python", [], processes=1) == ["python", "-m", "training"]


def test_prod_factory_builds_the_k8s_launcher_from_env_vars(monkeypatch):
    monkeypatch.delenv("TRAINER_NAMESPACE", raising=False)
    launcher = build_resources("prod")["trainer"]
    assert isinstance(launcher, K8sTrainerLauncher)
    assert launcher.image == dg.EnvVar("TRAINER_IMAGE")
    assert launcher.namespace == "ml-training-trainer"
    # The deployment's inventory, read by the factory; the shape was validated against it.
    assert launcher.inventory == INVENTORY


def test_the_training_steps_job_never_retries_inside_kubernetes():
    tags = {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in model_checkpoint.op.tags.items()
    }
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(job_image=IMAGE, dagster_home="/opt/dagster/dagster_home"),
        args=["dagster", "api", "execute_step"],
        job_name="dagster-step-model-checkpoint",
        user_defined_k8s_config=get_user_defined_k8s_config(tags),
        component="step_worker",
    )
    assert job.spec.backoff_limit == 0
    assert model_checkpoint.op.pool == "gpu"
    policy = model_checkpoint.op.retry_policy
    assert policy.max_retries == 3 and policy.backoff == dg.Backoff.EXPONENTIAL


def test_progress_lines_read_like_a_progress_bar():
    line = describe_progress(
        {"step": 250, "total": 1000, "samples_per_s": 12345.6, "loss": 0.41234, "eta_s": 61.2}
    )
    assert line == "step 250/1000 (25%) | 12,346 samples/s | loss 0.4123 | ETA 61s"
