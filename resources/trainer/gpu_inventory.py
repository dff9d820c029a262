"""The GPU nodes the trainer may run on, and the trainer shapes that pack them.

A shape is one number, the GPUs an attempt trains on, on one node flavor. It packs when it is a
divisor of the flavor's GPUs per node (one pod; 2-GPU pods fill an 8-GPU node four times) or a
whole number of nodes (one pod per node, every GPU of each). Anything else strands GPUs: 3-GPU
pods leave 2 GPUs of every 8-GPU node that no pod of the shape fits, and jobs queue while GPUs
sit idle (the seeds' fragmentation incident). Pods, GPUs per pod and torchrun's nproc-per-node
all come from this one shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml
from pydantic import Field


class NodeFlavor(dg.Config):
    """One GPU node shape of the training pool (a Kueue ResourceFlavor of the same name)."""

    name: str
    gpus_per_node: int = Field(ge=1)
    nodes: int = Field(ge=1, description="How many nodes of this shape the cluster has.")
    node_labels: dict[str, str] = Field(description="Labels that select these nodes.")

    def packing_shapes(self) -> list[int]:
        """Every GPU count that packs: the divisors of a node, then whole nodes."""
        one_node = [g for g in range(1, self.gpus_per_node + 1) if self.gpus_per_node % g == 0]
        whole_nodes = [self.gpus_per_node * n for n in range(2, self.nodes + 1)]
        return one_node + whole_nodes


class GpuInventory(dg.Config):
    """The training pool's node shapes (deployments/k8s/gpu-inventory.yaml)."""

    flavors: list[NodeFlavor]

    def flavor(self, name: str | None) -> NodeFlavor:
        """The flavor called `name`; the first one when no name is given."""
        if not self.flavors:
            raise ValueError("the GPU inventory lists no node flavor")
        if name is None:
            return self.flavors[0]
        for flavor in self.flavors:
            if flavor.name == name:
                return flavor
        known = ", ".join(f.name for f in self.flavors)
        raise ValueError(
            f"GPU flavor {name!r} is not in the node inventory (flavors: {known}); name one of "
            "them, or add the nodes to deployments/k8s/gpu-inventory.yaml and a Kueue "
            "ResourceFlavor for them."
        )

    def describe_packing_shapes(self) -> str:
        return "; ".join(
            f"{f.name} ({f.gpus_per_node} GPUs x {f.nodes} nodes): "
            + ", ".join(str(g) for g in f.packing_shapes())
            for f in self.flavors
        )


@dataclass(frozen=True)
class PodShape:
    """An attempt's pods: `pods` pods of `gpus_per_pod` GPUs each, on nodes of `flavor`."""

    flavor: NodeFlavor
    pods: int
    gpus_per_pod: int

    @property
    def gpus(self) -> int:
        return self.pods * self.gpus_per_pod


def shape_for(inventory: GpuInventory, flavor_name: str | None, gpus: int) -> PodShape:
    """The pods that train on `gpus` GPUs of the flavor, or a refusal listing the shapes that
    pack. The one place that turns a GPU count into pods."""
    flavor = inventory.flavor(flavor_name)
    per_node = flavor.gpus_per_node
    if gpus in flavor.packing_shapes():
        if gpus <= per_node:
            return PodShape(flavor, pods=1, gpus_per_pod=gpus)
        return PodShape(flavor, pods=gpus // per_node, gpus_per_pod=per_node)
    if gpus < 1:
        why = "an attempt needs at least one GPU"
    elif gpus < per_node:
        why = (
            f"{gpus} does not divide a node's {per_node}: every node would keep "
            f"{per_node % gpus} GPUs no pod of this shape fits, and jobs would queue with GPUs idle"
        )
    elif gpus % per_node:
        why = f"a job across nodes takes whole nodes, and {gpus} is not a multiple of {per_node}"
    else:
        why = f"the inventory has only {flavor.nodes} such nodes"
    raise ValueError(
        f"trainer shape of {gpus} GPUs on {flavor.name} does not pack its nodes: {why}. Shapes "
        f"that pack: {inventory.describe_packing_shapes()}. Set TRAINER_GPUS (and "
        "TRAINER_GPU_FLAVOR) to one of them."
    )


def load_inventory(path: str | Path) -> GpuInventory:
    """The inventory file, with a clear error if it is missing or malformed."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise ValueError(
            f"GPU inventory {path} not found: set GPU_INVENTORY_FILE to the file that lists the "
            "training nodes (format: deployments/k8s/gpu-inventory.yaml)"
        ) from err
    return GpuInventory(flavors=[NodeFlavor(**flavor) for flavor in data["flavors"]])
