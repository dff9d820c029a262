"""AdamW and its learning-rate schedule: linear warmup, then cosine decay to a floor."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from training.config import TrainConfig


def lr_multiplier(step: int, config: TrainConfig) -> float:
    """Factor applied to config.lr for the optimizer step with 0-based index `step`."""
    if step < config.warmup_steps:
        # (step + 1): the very first update already moves; a zero LR step would be wasted.
        return (step + 1) / config.warmup_steps
    decay_steps = max(1, config.total_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> LambdaLR:
    # A closure (not a callable object) so LambdaLR.state_dict() stores None for it and the
    # checkpoint stays loadable with weights_only=True.
    def multiplier(step: int) -> float:
        return lr_multiplier(step, config)

    return LambdaLR(optimizer, multiplier)
