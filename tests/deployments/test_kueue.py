"""deployments/k8s/kueue/: Kueue v0.9+ objects (kueue.x-k8s.io/v1beta1), checked against the
fields they use (tests/support/kueue_schema.py: Kueue's CRDs are on no package registry) and
against what the rest of the deployment says: the node inventory, the trainer launcher's queue,
priority classes, namespace and pod requests, and the gpu pool's size."""

import copy

import jsonschema
import pytest
import yaml

from resources.trainer.k8s_launcher import K8sTrainerLauncher
from tests.support.environment import REPO_ROOT
from tests.support.gpu_inventory import INVENTORY
from tests.support.kueue_schema import KUEUE_API, validate_kueue
from tests.support.queue_policy import HELM

KUEUE = REPO_ROOT / "deployments" / "k8s" / "kueue"
IMAGE = "registry.example/ml-template@sha256:" + "7" * 64
LAUNCHER = K8sTrainerLauncher(image=IMAGE, inventory=INVENTORY)


def _documents() -> list[dict]:
    return [
        doc
        for path in sorted(KUEUE.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def _kind(kind: str) -> list[dict]:
    return [doc for doc in _documents() if doc["kind"] == kind]


def _quota(cluster_queue: dict, flavor: str, resource: str) -> dict:
    for group in cluster_queue["spec"]["resourceGroups"]:
        for entry in group["flavors"]:
            if entry["name"] == flavor:
                for quota in entry["resources"]:
                    if quota["name"] == resource:
                        return quota
    raise AssertionError(f"no {resource} quota for flavor {flavor}")


def test_every_kueue_object_passes_its_schema():
    kinds = sorted(validate_kueue(doc)["kind"] for doc in _documents())
    assert kinds == sorted(
        ["ResourceFlavor"] * len(INVENTORY.flavors)
        + ["ClusterQueue", "LocalQueue", "WorkloadPriorityClass", "WorkloadPriorityClass"]
    )
    assert {doc["apiVersion"] for doc in _documents()} == {KUEUE_API}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "queueingStrategy"), "BestEffortFifo"),  # not one of the enum
        (("spec", "preemption", "withinClusterQueue"), "Lower"),
        (("spec", "cohrot"), "gpu-training"),  # misspelt
        (("spec", "resourceGroups", 0, "flavors", 0, "resources", 0, "nominalQuota"), "lots"),
        (("spec", "resourceGroups", 0, "flavors", 0, "resources", 0, "borrowLimit"), 4),
    ],
)
def test_the_schema_check_is_real(path, value):
    [queue] = _kind("ClusterQueue")
    broken = copy.deepcopy(queue)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate_kueue(broken)


def test_one_resource_flavor_per_node_shape_of_the_inventory():
    flavors = {doc["metadata"]["name"]: doc["spec"] for doc in _kind("ResourceFlavor")}
    assert set(flavors) == {flavor.name for flavor in INVENTORY.flavors}
    for flavor in INVENTORY.flavors:
        # The pods' nodeSelector carries these labels: Kueue assigns that flavor's quota.
        assert flavors[flavor.name]["nodeLabels"] == flavor.node_labels


def test_the_cluster_queue_quota_fits_the_nodes_and_covers_what_the_pods_request():
    [queue] = _kind("ClusterQueue")
    groups = queue["spec"]["resourceGroups"]
    covered = {resource for group in groups for resource in group["coveredResources"]}
    [container] = LAUNCHER.pod_spec()["containers"]
    # Kueue refuses a Job asking for a resource its ClusterQueue does not cover.
    assert set(container["resources"]["requests"]) <= covered
    for flavor in INVENTORY.flavors:
        gpus = _quota(queue, flavor.name, "nvidia.com/gpu")
        nominal = int(gpus["nominalQuota"])
        assert nominal > 0
        assert nominal + int(gpus.get("borrowingLimit", 0)) <= flavor.gpus_per_node * flavor.nodes
    # Daily runs evict backfill Jobs; borrowing is documented with its limits.
    assert queue["spec"]["preemption"]["withinClusterQueue"] == "LowerPriority"
    assert queue["spec"]["cohort"]


def test_the_launcher_names_the_local_queue_and_priority_classes_that_exist():
    [local] = _kind("LocalQueue")
    [queue] = _kind("ClusterQueue")
    assert local["metadata"]["name"] == LAUNCHER.kueue_queue
    assert local["spec"]["clusterQueue"] == queue["metadata"]["name"]
    # The trainer namespace is the one the ClusterQueue admits from.
    assert local["metadata"]["namespace"] == LAUNCHER.namespace
    selector = queue["spec"]["namespaceSelector"]["matchLabels"]
    assert selector == {"kubernetes.io/metadata.name": LAUNCHER.namespace}
    values = {doc["metadata"]["name"]: doc["value"] for doc in _kind("WorkloadPriorityClass")}
    assert values[LAUNCHER.daily_priority_class] > values[LAUNCHER.backfill_priority_class]
    threshold = queue["spec"]["preemption"]["borrowWithinCohort"]["maxPriorityThreshold"]
    assert (
        values[LAUNCHER.backfill_priority_class]
        <= threshold
        < values[LAUNCHER.daily_priority_class]
    )


def test_every_gpu_pool_slot_can_be_admitted_within_the_nominal_quota():
    """A step holding a gpu slot waits for admission holding no GPU; sized so that all of them
    fit the pipeline's own quota, no slot waits on borrowing."""
    values = yaml.safe_load(HELM.read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    [queue] = _kind("ClusterQueue")
    nominal = int(_quota(queue, env["TRAINER_GPU_FLAVOR"], "nvidia.com/gpu")["nominalQuota"])
    slots = values["concurrency"]["pools"]["defaultLimit"]
    assert slots * int(env["TRAINER_GPUS"]) <= nominal
