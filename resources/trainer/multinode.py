"""The trainer's Job: N pods x G GPUs, one torchrun agent per pod, joined by c10d.

One pod (N = 1) is the same Job without the Service and the rendezvous: every attempt is a
Job, so Kueue admits every shape the same way (resources/trainer/admission.py).

The shape is Kubernetes' own for this, with no operator to install: an Indexed Job of N pods
(completions = parallelism = N, `backoffLimit: 0`) and a headless Service whose name is the
pods' `subdomain`, so pod i is reachable as `<job>-<i>.<job>` from the moment it runs
(`publishNotReadyAddresses`). Every pod runs the same command: torchrun with
`--rdzv-backend c10d --rdzv-endpoint <job>-0.<job>:29400`, so pod 0's agent hosts the
rendezvous store (it recognizes the endpoint as its own address) and the others join it.

Why a failure restarts everything: torchrun gets `--max-restarts 0` and the Job
`backoffLimit: 0`, so a lost pod (node loss, eviction, OOM) fails the whole Job, and Dagster's
RetryPolicy launches a new Job (new name, new rendezvous id) that resumes from the last
checkpoint. Restarting one pod inside a live rendezvous would need elastic membership the
trainer does not implement, and would hide the retry from Dagster's bookkeeping.

Why Dagster reads pod 0: c10d ranks the nodes by their address (then pid), and pod 0's name
`<job>-0` sorts before every `<job>-<i>` (no other index starts with 0), so global rank 0,
the one rank that prints the trainer's events and writes checkpoints, runs in pod 0. Its
log is the Pipes channel; the other pods run the same bridge, whose messages nobody reads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client import (
    V1Job,
    V1JobSpec,
    V1ObjectMeta,
    V1OwnerReference,
    V1Pod,
    V1PodTemplateSpec,
    V1Service,
    V1ServicePort,
    V1ServiceSpec,
)

from resources.trainer.admission import Admission, AdmissionWatch

# torchrun's default c10d port; the Service publishes it, pod 0's agent listens on it.
RDZV_PORT = 29400
# Our label on the Job's pods: the Service selects them by it, and the launcher finds pod 0.
JOB_LABEL = "ml-template/trainer-job"
# A finished Job (and, through its owner reference, the Service) is removed after this long
# even if the run worker that created it died before cleaning up.
TTL_AFTER_FINISHED_S = 3600
POLL_S = 5.0


def rendezvous_command(
    python: str,
    trainer_args: Sequence[str],
    *,
    nodes: int,
    procs_per_node: int,
    endpoint: str,
    rdzv_id: str,
    local_addr: str | None = None,
) -> list[str]:
    """The command every node runs: torchrun joining `nodes` agents at `endpoint` (c10d).

    `--max-restarts 0`: a failed worker fails its agent, and with it the job, instead of
    re-forming the group with whoever is left (see the module docstring). `local_addr` is
    the address the other nodes reach this one at; torchrun's default, the host's FQDN, is
    right on Kubernetes.
    """
    command = [
        python, "-m", "torch.distributed.run",
        f"--nnodes={nodes}", f"--nproc-per-node={procs_per_node}",
        "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", f"--rdzv-id={rdzv_id}",
        "--max-restarts=0",
    ]  # fmt: skip
    if local_addr:
        command.append(f"--local-addr={local_addr}")
    return [*command, "-m", "training", *trainer_args]


@dataclass(frozen=True)
class MultiNodeJob:
    """One attempt's names: the Job, its Service (same name) and the rendezvous endpoint."""

    name: str
    namespace: str
    nodes: int

    @classmethod
    def for_attempt(cls, run_id: str, retry_number: int, namespace: str, nodes: int):
        # A new name per attempt: the failed attempt's Job may still be terminating, and a
        # fresh rendezvous id keeps a straggler of it out of the new group.
        return cls(f"dagster-trainer-{run_id[:8]}-a{retry_number}", namespace, nodes)

    @property
    def endpoint(self) -> str:
        return f"{self.name}-0.{self.name}:{RDZV_PORT}"

    @property
    def labels(self) -> dict[str, str]:
        return {JOB_LABEL: self.name}


def headless_service(job: MultiNodeJob, owner: V1Job | None = None) -> V1Service:
    """The pods' DNS names (`<job>-<i>.<job>`), published before they are ready: the
    rendezvous runs before any pod would pass a readiness probe. Owned by the Job (when its
    uid is known), so deleting or expiring the Job removes it too."""
    owners = None
    if owner is not None and owner.metadata is not None and owner.metadata.uid:
        owners = [
            V1OwnerReference(
                api_version="batch/v1", kind="Job", name=job.name, uid=owner.metadata.uid
            )
        ]
    return V1Service(
        api_version="v1",
        kind="Service",
        metadata=V1ObjectMeta(
            name=job.name, namespace=job.namespace, labels=job.labels, owner_references=owners
        ),
        spec=V1ServiceSpec(
            cluster_ip="None",
            selector=job.labels,
            publish_not_ready_addresses=True,
            ports=[V1ServicePort(name="c10d", port=RDZV_PORT, target_port=RDZV_PORT)],
        ),
    )


def indexed_job(
    job: MultiNodeJob, pod: V1Pod, active_deadline_seconds: int, admission: Admission
) -> V1Job:
    """The Job running `pod` (built by dagster-k8s's `build_pod_body`) on `job.nodes` pods at
    once, each reachable through the headless Service when there are several. Created suspended
    with Kueue's queue and priority labels on the Job itself (what Kueue reads), so all its
    pods are admitted together or not at all."""
    spec = copy.deepcopy(pod.spec)
    if job.nodes > 1:
        spec.subdomain = job.name
    spec.restart_policy = "Never"
    pod_labels = {**((pod.metadata.labels if pod.metadata else None) or {}), **job.labels}
    return V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=V1ObjectMeta(
            name=job.name, namespace=job.namespace, labels={**pod_labels, **admission.labels}
        ),
        spec=V1JobSpec(
            completion_mode="Indexed",
            completions=job.nodes,
            parallelism=job.nodes,
            # Kueue unsuspends it on admission; without Kueue it starts at once.
            suspend=admission.suspend,
            # Any pod failing fails the Job: Dagster alone retries, the whole group at once.
            backoff_limit=0,
            # Kubernetes stops and resets this clock while the Job is suspended: time spent
            # waiting for admission is not counted.
            active_deadline_seconds=active_deadline_seconds,
            ttl_seconds_after_finished=TTL_AFTER_FINISHED_S,
            template=V1PodTemplateSpec(metadata=V1ObjectMeta(labels=pod_labels), spec=spec),
        ),
    )


def with_rendezvous_port(pod_spec: Mapping[str, Any]) -> dict[str, Any]:
    """`pod_spec` (the launcher's camelCase dict) with the c10d port declared on the trainer."""
    spec = dict(pod_spec)
    containers = [dict(c) for c in spec["containers"]]
    containers[0]["ports"] = [{"name": "c10d", "containerPort": RDZV_PORT, "protocol": "TCP"}]
    spec["containers"] = containers
    return spec


def _load_cluster_config() -> None:
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()


def launch_job(
    context,
    *,
    job: MultiNodeJob,
    image: str,
    command: Sequence[str],
    pod_spec: Mapping[str, Any],
    env: Mapping[str, str],
    extras: Mapping[str, Any],
    active_deadline_seconds: int,
    admission: Admission,
    preemption_requested: Callable[[], bool],
) -> tuple[Any, bool]:
    """Create the Job (and, across nodes, its Service), wait for Kueue's admission, relay pod
    0's Pipes messages until it ends, delete both. Returns the Pipes invocation, as
    `PipesK8sClient.run` does for one pod, and whether Kueue evicted the Job while it ran.
    Raises PreemptedWhileQueued when asked to yield before admission."""
    import dagster as dg  # the manifests above are Dagster-free; this is the Pipes session
    from dagster_k8s import PipesK8sPodLogsMessageReader
    from dagster_k8s.pipes import build_pod_body

    _load_cluster_config()
    core, batch = kubernetes.client.CoreV1Api(), kubernetes.client.BatchV1Api()
    reader = PipesK8sPodLogsMessageReader()
    watch = AdmissionWatch(
        batch=batch,
        core=core,
        name=job.name,
        namespace=job.namespace,
        pod_selector=f"{JOB_LABEL}={job.name}",
        admission=admission,
        preemption_requested=preemption_requested,
        log=context.log,
        poll_s=POLL_S,
    )
    with dg.open_pipes_session(
        context=context,
        context_injector=dg.PipesEnvContextInjector(),
        message_reader=reader,
        extras=dict(extras),
    ) as session:
        pod = build_pod_body(
            pod_name=job.name,
            image=image,
            command=list(command),
            env_vars={**session.get_bootstrap_env_vars(), **env},
            base_pod_meta=None,
            base_pod_spec=with_rendezvous_port(pod_spec) if job.nodes > 1 else dict(pod_spec),
        )
        created = batch.create_namespaced_job(
            job.namespace, indexed_job(job, pod, active_deadline_seconds, admission)
        )
        try:
            if job.nodes > 1:
                core.create_namespaced_service(job.namespace, headless_service(job, owner=created))
            first = watch.first_pod(timeout_s=active_deadline_seconds)
            context.log.info(
                f"trainer Job {job.namespace}/{job.name}: {job.nodes} pod(s), following {first}"
                + (f", rendezvous at {job.endpoint}" if job.nodes > 1 else "")
            )
            reader.consume_pod_logs(
                context=context, core_api=core, pod_name=first, namespace=job.namespace
            )
            evicted = watch.evicted()
        finally:
            # Background propagation: the pods and the owned Service go with the Job.
            batch.delete_namespaced_job(job.name, job.namespace, propagation_policy="Background")
    return dg.PipesClientCompletedInvocation(session), evicted
