"""N pods x G GPUs: the Indexed Job and headless Service the launcher submits, built with the
Kubernetes client's models and validated against Kubernetes' schemas; the torchrun command
every pod runs (tests/training/test_multinode.py runs that same command for real)."""

import re

from dagster_k8s.pipes import build_pod_body
from kubernetes.client import V1ObjectMeta

from resources.trainer.admission import Admission
from resources.trainer.k8s_launcher import K8sTrainerLauncher
from resources.trainer.multinode import (
    JOB_LABEL,
    RDZV_PORT,
    MultiNodeJob,
    headless_service,
    indexed_job,
    rendezvous_command,
    with_rendezvous_port,
)
from tests.support.gpu_inventory import INVENTORY
from tests.support.kubernetes_schema import validated

IMAGE = "registry.example/ml-template@sha256:" + "c" * 64
RUN_ID = "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
# A DNS-1123 label: Indexed Job pods take `<job>-<index>` as their hostname.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _manifests(nodes=2, retry=0):
    launcher = K8sTrainerLauncher(
        image=IMAGE, gpus=8 * nodes, inventory=INVENTORY, env_secret="trainer-env"
    )
    assert launcher.shape().pods == nodes
    job = MultiNodeJob.for_attempt(RUN_ID, retry, launcher.namespace, nodes)
    pod = build_pod_body(
        pod_name=job.name,
        image=launcher.image,
        command=launcher.command(),
        env_vars={"DAGSTER_PIPES_CONTEXT": "e30=", "DAGSTER_PIPES_MESSAGES": "e30="},
        base_pod_meta=None,
        base_pod_spec=with_rendezvous_port(launcher.pod_spec()),
    )
    admission = Admission("ml-training", "ml-training-backfill")
    created = indexed_job(job, pod, launcher.active_deadline_seconds, admission)
    # What the API server returns from the create: the Job with its uid, which the Service
    # names as its owner.
    created.metadata = V1ObjectMeta(**{**created.metadata.to_dict(), "uid": "7d3c-uid"})
    return job, validated(created), validated(headless_service(job, owner=created))


def test_the_indexed_job_and_its_headless_service_pass_kubernetes_schema():
    job, manifest, service = _manifests(nodes=4)
    spec = manifest["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 4
    # One pod lost fails the whole Job; Dagster's RetryPolicy relaunches all of them.
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] > 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    # `<job>-<i>.<job>` resolves: the subdomain is the Service, which selects these pods.
    assert pod["subdomain"] == service["metadata"]["name"] == job.name
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    labels = spec["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == {JOB_LABEL: job.name}
    assert labels[JOB_LABEL] == job.name
    [port] = service["spec"]["ports"]
    [container] = pod["containers"]
    assert port["port"] == port["targetPort"] == RDZV_PORT
    assert container["ports"] == [{"containerPort": RDZV_PORT, "name": "c10d", "protocol": "TCP"}]
    # Each pod one whole 8-GPU node.
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert {e["name"] for e in container["env"]} >= {"DAGSTER_PIPES_CONTEXT"}
    [owner] = service["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", job.name, "7d3c-uid")


def test_every_attempt_is_a_new_job_with_a_valid_hostname():
    first, retry = (MultiNodeJob.for_attempt(RUN_ID, n, "dagster", 16) for n in (0, 1))
    assert first.name != retry.name
    for job in (first, retry):
        # The longest hostname, for the highest index, is still a DNS label.
        assert DNS_LABEL.match(f"{job.name}-{job.nodes - 1}")
        assert job.endpoint == f"{job.name}-0.{job.name}:{RDZV_PORT}"


def test_every_pod_runs_torchrun_against_pod_zeros_rendezvous():
    job = MultiNodeJob.for_attempt(RUN_ID, 2, "dagster", 2)
    command = rendezvous_command(
        "python", ["--store-root", "/data"], nodes=2, procs_per_node=8,
        endpoint=job.endpoint, rdzv_id=job.name,
    )  # fmt: skip
    assert command[:3] == ["python", "-m", "torch.distributed.run"]
    assert {
        "--nnodes=2",
        "--nproc-per-node=8",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={job.name}-0.{job.name}:{RDZV_PORT}",
        f"--rdzv-id={job.name}",
        "--max-restarts=0",
    } <= set(command)
    assert command[-4:] == ["-m", "training", "--store-root", "/data"]


def test_a_single_node_launcher_keeps_the_one_pod_shape():
    launcher = K8sTrainerLauncher(image=IMAGE, gpus=2, inventory=INVENTORY)
    assert launcher.shape().pods == 1
    assert "ports" not in launcher.pod_spec()["containers"][0]
