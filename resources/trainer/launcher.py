"""Where the trainer runs: a local subprocess (embedded default) or a GPU pod on Kubernetes.

Both launch the same command, `python -m resources.trainer.pipes_bridge`, through Dagster
Pipes: that bridge starts the pure-torch trainer (under torchrun when a pod has several GPUs)
and relays its progress into the run's logs. On Kubernetes every attempt is an Indexed Job
queued in Kueue: one such pod, or, for a shape of whole nodes, one per node joined by torchrun's
c10d rendezvous (resources/trainer/multinode.py, admission.py, gpu_inventory.py). The Kubernetes
launcher lives in resources/trainer/k8s_launcher.py, imported only
when the production resources are built, so a laptop never loads the Kubernetes client.
"""

import re
import sys
from abc import abstractmethod
from collections.abc import Mapping, Sequence

import dagster as dg
from pydantic import Field

from resources.paths import PROJECT_ROOT

BRIDGE_MODULE = "resources.trainer.pipes_bridge"
# An image reference that cannot move: `repo[:tag]@sha256:<64 hex>` (a tag alone can).
DIGEST_PINNED = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")


def require_digest_pinned(image: str, setting: str) -> str:
    """`image` if it is pinned by digest; otherwise an error naming the setting and the value."""
    if not DIGEST_PINNED.match(image):
        raise ValueError(
            f"{setting} is {image!r}, which is not pinned by digest: a tag can move under a "
            "running pipeline (the seeds' opencv incident). Use repo@sha256:<64 hex>, the digest "
            "`docker push` or `docker buildx imagetools inspect` prints for the trainer image."
        )
    return image


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
        store_args: Sequence[str],
    ) -> dg.PipesClientCompletedInvocation:
        """`store_args` name the object store for the bridge's preemption watch."""


class LocalTrainerLauncher(TrainerLauncher):
    """A subprocess on this machine (CPU, or the local GPUs)."""

    processes: int = Field(default=1, description="Trainer processes (>1 runs torchrun/DDP).")

    def launch(self, context, trainer_args, env, store_args):
        command = trainer_command(sys.executable, trainer_args, self.processes)
        client = dg.PipesSubprocessClient(cwd=str(PROJECT_ROOT))
        return client.run(
            context=context,
            command=[sys.executable, "-m", BRIDGE_MODULE],
            extras={"trainer_command": command, "store_args": list(store_args)},
            env=dict(env),
        )
