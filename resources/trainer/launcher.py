"""Where the trainer runs: a local subprocess (embedded default) or a GPU pod on Kubernetes.

Both launch the same command, `python -m resources.trainer.pipes_bridge`, through Dagster
Pipes: that bridge starts the pure-torch trainer (under torchrun when a pod has several GPUs)
and relays its progress into the run's logs.
"""

import sys
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from dagster_k8s import PipesK8sClient
from pydantic import Field

from resources.paths import PROJECT_ROOT

BRIDGE_MODULE = "resources.trainer.pipes_bridge"


def trainer_command(python: str, trainer_args: Sequence[str], processes: int) -> list[str]:
    """The trainer itself: plain `python -m training`, or torchrun for several processes."""
    if processes <= 1:
        return [python, "-m", "training", *trainer_args]
    return [
        python, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={processes}", "-m", "training", *trainer_args,
    ]  # fmt: skip


class TrainerLauncher(dg.ConfigurableResource):
    """Launches one training attempt and returns when it ends (Pipes invocation)."""

    image_digest: str = Field(
        default="unset", description="Digest of the image the code runs from (lineage)."
    )

    @abstractmethod
    def launch(
        self,
        context: dg.AssetExecutionContext,
        trainer_args: Sequence[str],
        env: Mapping[str, str],
    ) -> dg.PipesClientCompletedInvocation: ...


class LocalTrainerLauncher(TrainerLauncher):
    """A subprocess on this machine (CPU, or the local GPUs)."""

    processes: int = Field(default=1, description="Trainer processes (>1 runs torchrun/DDP).")

    def launch(self, context, trainer_args, env):
        command = trainer_command(sys.executable, trainer_args, self.processes)
        client = dg.PipesSubprocessClient(cwd=str(PROJECT_ROOT))
        return client.run(
            context=context,
            command=[sys.executable, "-m", BRIDGE_MODULE],
            extras={"trainer_command": command},
            env=dict(env),
        )


class K8sTrainerLauncher(TrainerLauncher):
    """A pod per attempt, shaped to the cluster's GPU nodes.

    The pod never restarts itself (restartPolicy Never) and has a hard deadline: Dagster's
    RetryPolicy is the only retry, and each retry resumes from the last checkpoint.
    """

    image: str = Field(description="Project image, pinned by digest (repo@sha256:...).")
    namespace: str = "dagster"
    gpus: int = Field(default=1, description="GPUs per pod; >1 runs torchrun with one per GPU.")
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
    service_account_name: str | None = Field(
        default=None, description="Service account with the bucket's IAM role (IRSA)."
    )
    env_secret: str | None = Field(
        default=None, description="Secret whose keys become env vars (credentials, endpoint)."
    )

    def pod_spec(self) -> dict[str, Any]:
        limits = {"nvidia.com/gpu": str(self.gpus), "cpu": self.cpu, "memory": self.memory}
        container: dict[str, Any] = {
            "name": "trainer",
            "resources": {"requests": dict(limits), "limits": limits},
        }
        if self.env_secret:
            container["envFrom"] = [{"secretRef": {"name": self.env_secret}}]
        spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": self.active_deadline_seconds,
            "nodeSelector": dict(self.node_selector),
            "tolerations": [dict(t) for t in self.tolerations],
            "containers": [container],
        }
        if self.service_account_name:
            spec["serviceAccountName"] = self.service_account_name
        return spec

    def command(self) -> list[str]:
        return ["python", "-m", BRIDGE_MODULE]

    def launch(self, context, trainer_args, env):
        return PipesK8sClient().run(
            context=context,
            image=self.image,
            command=self.command(),
            namespace=self.namespace,
            env=dict(env),
            base_pod_spec=self.pod_spec(),
            extras={"trainer_command": trainer_command("python", trainer_args, self.gpus)},
        )
