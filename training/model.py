"""The CTR model: a logistic matrix factorisation (user x item dot product, user and item
biases) plus an MLP over the context features (every other categorical input of the
model-input declaration, its numeric inputs and, with `history_features`, the history tables'
derived inputs). Which columns are the user and the item is the declaration's `factorized`.

Why this shape: a click is mostly a user-item affinity. An MLP over concatenated user and item
embeddings has to learn a dot product from data; the factorisation has it built in, which is
what makes it learn from a few thousand impressions a day (measured in
benchmarks/model_quality.py).

Warm start: a day's model may start from an earlier day's weights (`init_from`). The
embedding penalty then pulls the user and item factors towards those starting weights instead
of towards zero, so what earlier days taught is kept unless today's data says otherwise. The
anchors are buffers outside the state dict: checkpoints hold the same tensors either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from training.config import TrainConfig
from training.data import categorical_cardinalities, declaration, numeric_features


class CTRModel(nn.Module):
    def __init__(
        self,
        cardinalities: Sequence[int],
        numeric_dim: int,
        embedding_dim: int,
        hidden_sizes: Sequence[int],
        dropout: float,
        user: int,
        item: int,
    ):
        """`user` and `item`: the positions of the factorised pair among the categorical
        columns; every other position is a context input."""
        super().__init__()
        self.user, self.item = user, item
        self.context_columns = tuple(i for i in range(len(cardinalities)) if i not in (user, item))
        self.user_factors = nn.Embedding(cardinalities[user], embedding_dim)
        self.item_factors = nn.Embedding(cardinalities[item], embedding_dim)
        self.user_bias = nn.Embedding(cardinalities[user], 1)
        self.item_bias = nn.Embedding(cardinalities[item], 1)
        self.context = nn.ModuleList(
            nn.Embedding(cardinalities[i], embedding_dim) for i in self.context_columns
        )
        layers: list[nn.Module] = []
        width = embedding_dim * len(self.context_columns) + numeric_dim
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        # Small factor init: large random factors are noise the penalty then has to remove.
        for table in (self.user_factors, self.item_factors, *self.context):
            nn.init.normal_(table.weight, std=0.1)
        for table in (self.user_bias, self.item_bias):
            nn.init.zeros_(table.weight)
        self.register_buffer("user_anchor", torch.zeros_like(self.user_factors.weight), False)
        self.register_buffer("item_anchor", torch.zeros_like(self.item_factors.weight), False)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        users, items = categorical[:, self.user], categorical[:, self.item]
        affinity = (self.user_factors(users) * self.item_factors(items)).sum(1)
        biases = self.user_bias(users).squeeze(1) + self.item_bias(items).squeeze(1)
        context = [
            table(categorical[:, i])
            for table, i in zip(self.context, self.context_columns, strict=True)
        ]
        dtype = self.user_factors.weight.dtype
        features = torch.cat([*context, numeric.to(dtype)], dim=1)
        return affinity + biases + self.mlp(features).squeeze(1)

    def penalty(self, categorical: torch.Tensor) -> torch.Tensor:
        """Squared distance of the batch's user and item factors from their anchors (zero for
        a fresh model, the starting weights for a warm-started one), averaged over the batch."""
        users, items = categorical[:, self.user], categorical[:, self.item]
        user_shift = self.user_factors(users) - self.user_anchor[users]
        item_shift = self.item_factors(items) - self.item_anchor[items]
        return (user_shift.pow(2).sum(1) + item_shift.pow(2).sum(1)).float().mean()

    def warm_start(self, state: Mapping[str, torch.Tensor]) -> None:
        """Start from another day's weights (same shape), and anchor the factors to them."""
        self.load_state_dict(state)
        with torch.no_grad():
            self.user_anchor.copy_(self.user_factors.weight)
            self.item_anchor.copy_(self.item_factors.weight)


def build_model(config: TrainConfig) -> CTRModel:
    """The model the config's declaration and sizes describe (its widths follow the inputs)."""
    inputs = declaration(config)
    return CTRModel(
        cardinalities=categorical_cardinalities(config),
        numeric_dim=len(numeric_features(config)),
        embedding_dim=config.embedding_dim,
        hidden_sizes=config.hidden_sizes,
        dropout=config.dropout,
        user=inputs.categorical_index(inputs.factorized.user),
        item=inputs.categorical_index(inputs.factorized.item),
    )


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # Computed in fp32 even under bf16 autocast: the log-sigmoid of small probabilities loses
    # too much precision in bf16.
    return nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())
