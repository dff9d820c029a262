"""Shapes that pack: a trainer shape is checked against the deployment's node inventory when the
resources are built, and refused with the shapes that would pack."""

import pytest
import yaml

from resources.factory import build_resources
from resources.trainer.gpu_inventory import GpuInventory, NodeFlavor, shape_for
from resources.trainer.k8s_launcher import K8sTrainerLauncher
from tests.support.environment import REPO_ROOT
from tests.support.gpu_inventory import INVENTORY

IMAGE = "registry.example/ml-template@sha256:" + "9" * 64
# The seeds' cluster: 8-GPU nodes.
EIGHTS = GpuInventory(
    flavors=[NodeFlavor(name="eights", gpus_per_node=8, nodes=4, node_labels={"gpu": "8"})]
)


@pytest.mark.parametrize(
    ("gpus", "pods", "per_pod"),
    [(1, 1, 1), (2, 1, 2), (4, 1, 4), (8, 1, 8), (16, 2, 8), (32, 4, 8)],
)
def test_shapes_that_pack_become_pods(gpus, pods, per_pod):
    shape = shape_for(EIGHTS, None, gpus)
    assert (shape.pods, shape.gpus_per_pod, shape.gpus) == (pods, per_pod, gpus)
    # Whole pods per node, none of a node's GPUs stranded.
    assert 8 % per_pod == 0


@pytest.mark.parametrize(
    ("gpus", "why"),
    [
        (3, "3 does not divide a node's 8: every node would keep 2 GPUs"),
        (6, "6 does not divide a node's 8"),
        (12, "a job across nodes takes whole nodes, and 12 is not a multiple of 8"),
        (40, "the inventory has only 4 such nodes"),
        (0, "an attempt needs at least one GPU"),
    ],
)
def test_shapes_that_strand_gpus_are_refused_with_the_ones_that_pack(gpus, why):
    with pytest.raises(ValueError) as refused:
        shape_for(EIGHTS, "eights", gpus)
    message = str(refused.value)
    assert f"trainer shape of {gpus} GPUs on eights does not pack its nodes" in message
    assert why in message
    assert "Shapes that pack: eights (8 GPUs x 4 nodes): 1, 2, 4, 8, 16, 24, 32." in message


def test_every_flavor_of_the_deployment_is_listed_and_an_unknown_one_refused():
    every_flavor = (
        r"gpu-a100-8 \(8 GPUs x 4 nodes\): 1, 2, 4, 8, 16, 24, 32; "
        r"gpu-l4-4 \(4 GPUs x 2 nodes\): 1, 2, 4, 8\."
    )
    with pytest.raises(ValueError, match=every_flavor):
        K8sTrainerLauncher(image=IMAGE, gpus=5, inventory=INVENTORY)
    with pytest.raises(ValueError, match="GPU flavor 'h100' is not in the node inventory"):
        K8sTrainerLauncher(image=IMAGE, gpu_flavor="h100", inventory=INVENTORY)
    # 8 GPUs are one node of the A100 flavor but two whole nodes of the L4 one.
    l4 = K8sTrainerLauncher(image=IMAGE, gpus=8, gpu_flavor="gpu-l4-4", inventory=INVENTORY)
    assert (l4.shape().pods, l4.shape().gpus_per_pod) == (2, 4)
    assert l4.pod_spec()["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-L4"


def test_the_factory_refuses_a_shape_that_cannot_pack_when_the_definitions_load(monkeypatch):
    monkeypatch.setenv("TRAINER_GPUS", "3")
    monkeypatch.delenv("TRAINER_GPU_FLAVOR", raising=False)
    with pytest.raises(ValueError, match="trainer shape of 3 GPUs on gpu-a100-8 does not pack"):
        build_resources("prod")
    monkeypatch.setenv("TRAINER_GPUS", "8")
    monkeypatch.setenv("TRAINER_GPU_FLAVOR", "gpu-l4-4")
    shape = build_resources("prod")["trainer"].shape()
    assert (shape.flavor.name, shape.pods, shape.gpus_per_pod) == ("gpu-l4-4", 2, 4)


def test_the_factory_reads_the_inventory_file_it_is_given(monkeypatch, tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {"flavors": [{"name": "h100", "gpus_per_node": 4, "nodes": 1, "node_labels": {}}]}
        )
    )
    monkeypatch.setenv("GPU_INVENTORY_FILE", str(inventory))
    monkeypatch.setenv("TRAINER_GPUS", "8")
    monkeypatch.delenv("TRAINER_GPU_FLAVOR", raising=False)
    with pytest.raises(ValueError, match=r"Shapes that pack: h100 \(4 GPUs x 1 nodes\): 1, 2, 4\."):
        build_resources("prod")
    monkeypatch.setenv("GPU_INVENTORY_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(ValueError, match=r"missing\.yaml not found: set GPU_INVENTORY_FILE"):
        build_resources("prod")


def test_the_helm_values_ask_for_a_shape_that_packs(monkeypatch):
    values = yaml.safe_load((REPO_ROOT / "deployments/k8s/values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    for name in ("TRAINER_GPUS", "TRAINER_GPU_FLAVOR"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.delenv("GPU_INVENTORY_FILE", raising=False)
    shape = build_resources("prod")["trainer"].shape()
    assert shape.gpus == int(env["TRAINER_GPUS"])
