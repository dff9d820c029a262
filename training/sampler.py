"""A deterministic batch sampler whose position can be saved and restored exactly.

Each epoch's order is a permutation drawn from its own generator seeded by (seed, epoch), so
the order never depends on how many batches were drawn before, on the global RNG, or on
whether the process restarted. Restoring (epoch, batch_index) therefore reproduces the
remaining batches of the epoch bit for bit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataPosition:
    """The next batch to serve. `global_batch` is batch_size * world_size at save time."""

    epoch: int
    batch_index: int
    seed: int
    global_batch: int

    def to_dict(self) -> dict[str, int]:
        return {
            "epoch": self.epoch,
            "batch_index": self.batch_index,
            "seed": self.seed,
            "global_batch": self.global_batch,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataPosition:
        return cls(**{k: int(data[k]) for k in ("epoch", "batch_index", "seed", "global_batch")})


class BatchSampler:
    """Global batches of batch_size * world_size rows; each rank takes its own slice.

    Incomplete trailing batches are dropped so every rank runs the same number of steps
    (an uneven last batch would leave one DDP rank waiting in all-reduce forever).
    """

    def __init__(
        self, num_examples: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ):
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.global_batch = batch_size * world_size
        self.batches_per_epoch = num_examples // self.global_batch
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{num_examples} training examples cannot fill one global batch of "
                f"{self.global_batch} (batch_size {batch_size} x {world_size} processes); "
                "lower batch_size or widen the input window"
            )
        self.epoch = 0
        self.batch_index = 0
        self._order: tuple[int, np.ndarray] | None = None

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._order = (epoch, rng.permutation(self.num_examples))
        return self._order[1]

    def next_indices(self) -> torch.Tensor:
        """This rank's row indices for the batch at the current position, then advance."""
        order = self._permutation(self.epoch)
        start = self.batch_index * self.global_batch + self.rank * self.batch_size
        indices = torch.from_numpy(order[start : start + self.batch_size].copy())
        self.batch_index += 1
        if self.batch_index == self.batches_per_epoch:
            self.epoch, self.batch_index = self.epoch + 1, 0
        return indices

    def position(self) -> DataPosition:
        return DataPosition(self.epoch, self.batch_index, self.seed, self.global_batch)

    def restore(self, position: DataPosition) -> None:
        if position.seed != self.seed:
            raise ValueError(f"Saved sampler seed {position.seed} != configured {self.seed}")
        batch_index = position.batch_index
        if position.global_batch != self.global_batch:
            # Rescheduled on a different number of processes: keep the number of rows consumed
            # in this epoch (rounded down, so no row is skipped). Bit-reproducibility against an
            # uninterrupted run is lost, which we say rather than refuse to resume.
            consumed = position.batch_index * position.global_batch
            batch_index = consumed // self.global_batch
            logger.warning(
                "Global batch changed from %d to %d since the checkpoint; resuming at batch %d "
                "of epoch %d (the run is no longer bit-identical to an uninterrupted one)",
                position.global_batch,
                self.global_batch,
                batch_index,
                position.epoch,
            )
        self.epoch = position.epoch + batch_index // self.batches_per_epoch
        self.batch_index = batch_index % self.batches_per_epoch
