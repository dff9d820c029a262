"""The trainer as a GPU pod (or an Indexed Job of pods) on Kubernetes, through dagster-k8s.

Kept apart from resources/trainer/launcher.py so that only the production resources import
dagster-k8s and the Kubernetes client (about 0.6 s per process that loads the definitions).
"""

from typing import Any

import dagster as dg
from dagster_k8s import PipesK8sClient
from pydantic import Field, field_validator, model_validator

from resources.trainer.launcher import (
    BRIDGE_MODULE,
    TrainerLauncher,
    require_digest_pinned,
    trainer_command,
)
from resources.trainer.multinode import MultiNodeJob, launch_multinode, rendezvous_command

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
    """A pod per attempt, shaped to the cluster's GPU nodes.

    The pod never restarts itself (restartPolicy Never) and has a hard deadline: Dagster's
    RetryPolicy is the only retry, and each retry resumes from the last checkpoint.
    """

    image: str = Field(description="Project image, pinned by digest (repo@sha256:...).")
    namespace: str = "dagster"
    gpus: int = Field(default=1, description="GPUs per pod; >1 runs torchrun with one per GPU.")
    nodes: int = Field(
        default=1,
        description="Pods per attempt. >1: an Indexed Job of this many pods x gpus, joined by "
        "torchrun's c10d rendezvous through a headless Service; any pod lost fails the attempt "
        "and Dagster's retry relaunches all of them from the last checkpoint.",
    )
    node_gpus: int = Field(
        default=8,
        description="GPUs of one node of the training pool. Pods ask for a divisor of it, so "
        "they pack the nodes (2-GPU pods: 4 per 8-GPU node; 3-GPU pods would strand 2 GPUs "
        "on every node), and a job across nodes takes whole nodes.",
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
        gpus, node_gpus, nodes = self.gpus, self.node_gpus, self.nodes
        if min(gpus, node_gpus, nodes) < 1:
            raise ValueError(
                f"K8sTrainerLauncher: gpus={gpus}, node_gpus={node_gpus} and nodes={nodes} "
                "must all be at least 1"
            )
        if node_gpus % gpus:
            raise ValueError(
                f"K8sTrainerLauncher: gpus={gpus} per pod does not divide node_gpus={node_gpus}: "
                f"every node would keep {node_gpus % gpus} GPUs that no pod of this shape fits, "
                f"and jobs queue with GPUs idle. Use a divisor of {node_gpus}."
            )
        if nodes > 1 and gpus != node_gpus:
            raise ValueError(
                f"K8sTrainerLauncher: nodes={nodes} with gpus={gpus} of {node_gpus} per node: a "
                "job across nodes takes whole nodes (gpus = node_gpus); a smaller one fits on "
                "one node with nodes=1, where its all-reduce never crosses the network."
            )
        return self

    def pod_spec(self) -> dict[str, Any]:
        limits = {"nvidia.com/gpu": str(self.gpus), "cpu": self.cpu, "memory": self.memory}
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
            "nodeSelector": dict(self.node_selector),
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
        if self.nodes > 1:
            return self._launch_across_nodes(context, trainer_args, env, store_args)
        return PipesK8sClient().run(
            context=context,
            image=self.image,
            command=self.command(),
            namespace=self.namespace,
            env=dict(env),
            base_pod_spec=self.pod_spec(),
            extras={
                "trainer_command": trainer_command("python", trainer_args, self.gpus),
                "store_args": list(store_args),
            },
        )

    def _launch_across_nodes(self, context, trainer_args, env, store_args):
        job = MultiNodeJob.for_attempt(
            context.run_id, context.retry_number, self.namespace, self.nodes
        )
        command = rendezvous_command(
            "python",
            trainer_args,
            nodes=self.nodes,
            procs_per_node=self.gpus,
            endpoint=job.endpoint,
            rdzv_id=job.name,
        )
        return launch_multinode(
            context,
            job=job,
            image=self.image,
            command=self.command(),
            pod_spec=self.pod_spec(),
            env=dict(env),
            extras={"trainer_command": command, "store_args": list(store_args)},
            active_deadline_seconds=self.active_deadline_seconds,
        )
