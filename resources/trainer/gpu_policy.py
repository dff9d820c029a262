"""How the `gpu` pool is shared: the daily training run may take a backfill's slot.

The queue never preempts (Dagster's pools only hand free slots out by priority), and a
backfill's training step holds its slot for a whole training run. Training resumes from
checkpoints, so taking the slot back costs the backfill at most one step boundary of work;
`sensors/gpu_preemption.py` does it, within these limits.
"""

import dagster as dg
from pydantic import Field

GPU_POOL = "gpu"


class GpuPolicy(dg.ConfigurableResource):
    """The preemption limits for the `gpu` pool (read by the preemption sensor)."""

    max_preemptions_per_run: int = Field(
        default=2,
        description="How often one backfill run may give its GPU to a daily run; after that it "
        "keeps its slot. 0 switches preemption off.",
    )
