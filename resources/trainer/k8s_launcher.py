"""The trainer as a Kubernetes Job (one pod, or an Indexed Job of whole nodes) admitted by Kueue.

Kept apart from resources/trainer/launcher.py so that only the production resources import
dagster-k8s and the Kubernetes client (about 0.6 s per process that loads the definitions).
"""

from typing import Any

import dagster as dg
from pydantic import Field, field_validator, model_validator

from assets.model.model_checkpoint import PREEMPTED_RETRY_WAIT_S
from resources.trainer.admission import Admission, PreemptedWhileQueued
from resources.trainer.gpu_inventory import GpuInventory, PodShape, shape_for
from resources.trainer.launcher import (
    BRIDGE_MODULE,
    TrainerLauncher,
    require_digest_pinned,
    trainer_command,
)
from resources.trainer.multinode import MultiNodeJob, launch_job, rendezvous_command
from resources.trainer.preemption import PREEMPTIONS_TAG, clear_request, read_request
from sensors.schedules import is_daily_run
from training.store_args import store_from_args

# The trainer runs the least-reviewed code on the most exposed nodes: its own identity, as the
# image's non-root user, on a read-only root filesystem (writes go to the store; /tmp is scratch).
TRAINER_SERVICE_ACCOUNT = "ml-training-trainer"
TRAINER_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
TRAINER_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


class K8sTrainerLauncher(TrainerLauncher):
    """A Job per attempt, shaped to the cluster's GPU nodes and queued in Kueue.

    Its pods never restart themselves (restartPolicy Never, backoffLimit 0) and have a hard
    deadline: Dagster's RetryPolicy is the only retry, and each retry resumes from the last
    checkpoint. Waiting for Kueue's admission holds no GPU (resources/trainer/admission.py).
    """

    image: str = Field(description="Project image, pinned by digest (repo@sha256:...).")
    namespace: str = Field(
        default="ml-training-trainer",
        description="Where the training Jobs run: not the Dagster release's namespace, which "
        "holds the promotion identity's Secret (a pod can mount any Secret of its namespace).",
    )
    gpus: int = Field(
        default=1,
        description="GPUs of one attempt: the trainer's one shape. A divisor of the flavor's GPUs "
        "per node runs one pod of that many GPUs; a multiple of it runs an Indexed Job of whole "
        "nodes joined by torchrun's c10d rendezvous. Pods, GPUs per pod and nproc-per-node all "
        "derive from it; any other count is refused with the shapes that pack.",
    )
    gpu_flavor: str | None = Field(
        default=None, description="Node flavor of the inventory to train on (default: the first)."
    )
    inventory: GpuInventory = Field(
        description="The training nodes per flavor (deployments/k8s/gpu-inventory.yaml)."
    )
    kueue_queue: str | None = Field(
        default="ml-training",
        description="Kueue LocalQueue of the trainer namespace (deployments/k8s/kueue/). Jobs are "
        "created suspended with its label and Kueue admits them whole; None: no Kueue, Jobs "
        "start at once on the default scheduler.",
    )
    daily_priority_class: str = Field(
        default="ml-training-daily", description="Kueue WorkloadPriorityClass of daily runs."
    )
    backfill_priority_class: str = Field(
        default="ml-training-backfill",
        description="Kueue WorkloadPriorityClass of every other run (backfills, reruns).",
    )
    cpu: str = "4"
    memory: str = "16Gi"
    node_selector: dict[str, str] = Field(
        default={"nvidia.com/gpu.present": "true"}, description="Schedule onto GPU nodes only."
    )
    tolerations: list[dict[str, str]] = Field(
        default=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        description="Tolerate the taint that keeps other pods off GPU nodes.",
    )
    active_deadline_seconds: int = Field(
        default=6 * 3600, description="Kill a hung attempt after this long."
    )
    termination_grace_period_seconds: int = Field(
        default=120,
        description="Time between SIGTERM (preemption, node drain, spot reclaim) and SIGKILL: "
        "covers finishing the current step and one checkpoint write (docs/gpu.md).",
    )
    service_account_name: str | None = Field(
        default=TRAINER_SERVICE_ACCOUNT,
        description="Service account with the trainer's IAM role (deployments/iam/trainer.json).",
    )
    env_secret: str | None = Field(
        default=None, description="Secret whose keys become env vars (credentials, endpoint)."
    )

    @field_validator("image", mode="before")
    @classmethod
    def _image_pinned_by_digest(cls, image: Any) -> Any:
        # Before validation, an EnvVar is still itself (the definitions load without its value,
        # which Dagster resolves when a run starts): the check then runs on the resolved value,
        # when the run builds this resource, before any pod is launched.
        if isinstance(image, dg.EnvVar) or not isinstance(image, str):
            return image
        return require_digest_pinned(image, "K8sTrainerLauncher.image (TRAINER_IMAGE in prod)")

    @model_validator(mode="after")
    def _shape_packs_the_nodes(self) -> "K8sTrainerLauncher":
        # Refused when the resource is built (definitions load, or a run's resource config),
        # before any Job exists.
        self.shape()
        return self

    def shape(self) -> PodShape:
        return shape_for(self.inventory, self.gpu_flavor, self.gpus)

    def admission(self, run: dg.DagsterRun) -> Admission:
        """The run's queue and priority: daily runs above everything else."""
        daily = is_daily_run(run)
        priority = self.daily_priority_class if daily else self.backfill_priority_class
        return Admission(self.kueue_queue, priority if self.kueue_queue else None)

    def pod_spec(self) -> dict[str, Any]:
        shape = self.shape()
        limits = {
            "nvidia.com/gpu": str(shape.gpus_per_pod),
            "cpu": self.cpu,
            "memory": self.memory,
        }
        container: dict[str, Any] = {
            "name": "trainer",
            "resources": {"requests": dict(limits), "limits": limits},
        }
        if self.env_secret:
            container["envFrom"] = [{"secretRef": {"name": self.env_secret}}]
        container["securityContext"] = dict(TRAINER_CONTAINER_SECURITY)
        container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
        spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": self.active_deadline_seconds,
            "terminationGracePeriodSeconds": self.termination_grace_period_seconds,
            # The flavor's labels: Kueue admits the Job onto that flavor's quota only.
            "nodeSelector": {**self.node_selector, **shape.flavor.node_labels},
            "tolerations": [dict(t) for t in self.tolerations],
            "containers": [container],
            "securityContext": dict(TRAINER_POD_SECURITY),
            # The trainer never calls the Kubernetes API; IRSA projects its own token.
            "automountServiceAccountToken": False,
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        }
        if self.service_account_name:
            spec["serviceAccountName"] = self.service_account_name
        return spec

    def command(self) -> list[str]:
        return ["python", "-m", BRIDGE_MODULE]

    def launch(self, context, trainer_args, env, store_args):
        shape = self.shape()
        job = MultiNodeJob.for_attempt(
            context.run.run_id, context.retry_number, self.namespace, shape.pods
        )
        if shape.pods > 1:
            command = rendezvous_command(
                "python",
                trainer_args,
                nodes=shape.pods,
                procs_per_node=shape.gpus_per_pod,
                endpoint=job.endpoint,
                rdzv_id=job.name,
            )
        else:
            command = trainer_command("python", trainer_args, shape.gpus_per_pod)
        store = store_from_args(list(store_args))
        try:
            invocation, evicted = launch_job(
                context,
                job=job,
                image=self.image,
                command=self.command(),
                pod_spec=self.pod_spec(),
                env=dict(env),
                extras={"trainer_command": command, "store_args": list(store_args)},
                active_deadline_seconds=self.active_deadline_seconds,
                admission=self.admission(context.run),
                preemption_requested=lambda: read_request(store, context.run.run_id) is not None,
            )
        except PreemptedWhileQueued as err:
            raise yield_queued_slot(context, store, str(err)) from err
        if evicted:
            record_eviction(context, job.name)
        return invocation


def yield_queued_slot(context, store, why: str) -> dg.RetryRequested:
    """The preemption sensor's request, answered for a Job Kueue had not admitted: nothing ran,
    so nothing is lost; the retry frees the gpu slot now and queues again."""
    clear_request(store, context.run.run_id)
    context.log.warning(why)
    return dg.RetryRequested(
        max_retries=context.retry_number + 1, seconds_to_wait=PREEMPTED_RETRY_WAIT_S
    )


def record_eviction(context, job_name: str) -> int:
    """Kueue evicted the running Job (its pods got SIGTERM and checkpointed): count it as a
    preemption of the run, so the step's retry, which resumes from that checkpoint, does not
    use up the retries meant for crashes. Returns the run's preemption count."""
    run = context.instance.get_run_by_id(context.run.run_id)
    count = int(run.tags.get(PREEMPTIONS_TAG, "0")) + 1
    context.instance.add_run_tags(context.run.run_id, {PREEMPTIONS_TAG: str(count)})
    context.log.warning(
        f"trainer Job {job_name} was evicted by Kueue (a higher-priority Job needed the quota, "
        "or the cohort reclaimed borrowed GPUs): the trainer saved a checkpoint on SIGTERM and "
        f"the step's retry resumes from it (preemption {count} of this run)."
    )
    return count
