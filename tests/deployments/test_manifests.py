"""What dagster-k8s would submit for this project, validated against Kubernetes' own schemas
(offline, strict, for KUBERNETES_VERSION) on top of the field assertions: the training pod in
every shape that packs the node inventory, the training step's Job and the run worker's Job."""

import json
import re

import kubernetes_validate
import pytest
import yaml
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)
from dagster_k8s.pipes import build_pod_body

from assets.model.model_checkpoint import model_checkpoint
from resources.trainer.k8s_launcher import K8sTrainerLauncher
from tests.support.environment import REPO_ROOT
from tests.support.gpu_inventory import INVENTORY
from tests.support.kubernetes_schema import KUBERNETES_VERSION, manifest, validated

IMAGE = "registry.example/ml-template@sha256:" + "b" * 64
DAGSTER_HOME = "/opt/dagster/dagster_home"
# The deployment's first flavor (deployments/k8s/gpu-inventory.yaml): 8-GPU nodes.
NODE_GPUS = INVENTORY.flavors[0].gpus_per_node


def _training_pod(launcher: K8sTrainerLauncher):
    return build_pod_body(
        pod_name="dagster-pipes-trainer",
        image=launcher.image,
        command=launcher.command(),
        # What the Pipes session injects: its bootstrap variables.
        env_vars={"DAGSTER_PIPES_CONTEXT": "e30=", "DAGSTER_PIPES_MESSAGES": "e30="},
        base_pod_meta=None,
        base_pod_spec=launcher.pod_spec(),
    )


@pytest.mark.parametrize("gpus", [1, 2, 4, 8])
def test_training_pods_that_pack_the_nodes_pass_kubernetes_schema(gpus):
    launcher = K8sTrainerLauncher(
        image=IMAGE, gpus=gpus, inventory=INVENTORY, service_account_name="trainer",
        env_secret="trainer-env",
    )  # fmt: skip
    pod = validated(_training_pod(launcher))
    [container] = pod["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert pod["spec"]["restartPolicy"] == "Never"
    # Whole pods per node, none of the node's GPUs stranded.
    assert NODE_GPUS % gpus == 0 and NODE_GPUS // gpus * gpus == NODE_GPUS


def test_the_schema_check_is_real():
    # A misspelt field and a wrong type, each refused by the schema itself.
    pod = manifest(_training_pod(K8sTrainerLauncher(image=IMAGE, inventory=INVENTORY)))
    misspelt = json.loads(json.dumps(pod))
    misspelt["spec"]["activeDeadlineSecond"] = 60
    with pytest.raises(kubernetes_validate.ValidationError, match="activeDeadlineSecond"):
        validated(misspelt)
    wrong_type = json.loads(json.dumps(pod))
    wrong_type["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = [1]
    with pytest.raises(kubernetes_validate.ValidationError):
        validated(wrong_type)


def test_the_training_steps_job_passes_kubernetes_schema():
    tags = {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in model_checkpoint.op.tags.items()
    }
    job = validated(
        construct_dagster_k8s_job(
            DagsterK8sJobConfig(job_image=IMAGE, dagster_home=DAGSTER_HOME),
            args=["dagster", "api", "execute_step"],
            job_name="dagster-step-model-checkpoint",
            user_defined_k8s_config=get_user_defined_k8s_config(tags),
            component="step_worker",
        )
    )
    assert job["kind"] == "Job" and job["spec"]["backoffLimit"] == 0


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def test_the_run_workers_job_from_the_helm_values_passes_kubernetes_schema():
    values = yaml.safe_load((REPO_ROOT / "deployments/k8s/values.yaml").read_text())
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    # The chart renders runK8sConfig's keys as run_k8s_config's (jobSpecConfig ->
    # job_spec_config), their contents as written.
    run_k8s_config = {_snake(k): v for k, v in launcher.get("runK8sConfig", {}).items()}
    job = validated(
        construct_dagster_k8s_job(
            DagsterK8sJobConfig(
                job_image=IMAGE,
                dagster_home=DAGSTER_HOME,
                instance_config_map="dagster-instance",
                env_secrets=[secret["name"] for secret in launcher.get("envSecrets", [])],
            ),
            args=["dagster", "api", "execute_run", "{}"],
            job_name="dagster-run-0123abcd",
            user_defined_k8s_config=UserDefinedDagsterK8sConfig.from_dict(run_k8s_config),
            component="run_worker",
        )
    )
    assert job["spec"]["backoffLimit"] == 0
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == IMAGE
    assert {e["secretRef"]["name"] for e in container["envFrom"]} >= {"ml-training-template-env"}


def test_the_stated_version_is_one_the_schemas_ship():
    assert (
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dagster"}},
            KUBERNETES_VERSION,
            strict=True,
        )
        == KUBERNETES_VERSION
    )
