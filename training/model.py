"""The CTR model: hashed embeddings for the categorical features plus the numeric features,
concatenated into an MLP that outputs one click logit."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from training.config import TrainConfig
from training.data import NUMERIC_FEATURES, categorical_cardinalities


class CTRModel(nn.Module):
    def __init__(
        self,
        cardinalities: Sequence[int],
        numeric_dim: int,
        embedding_dim: int,
        hidden_sizes: Sequence[int],
        dropout: float,
    ):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(n, embedding_dim) for n in cardinalities)
        layers: list[nn.Module] = []
        width = embedding_dim * len(cardinalities) + numeric_dim
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        # Small embedding init: N(0, 1) rows dominate the numeric inputs and slow early training.
        for embedding in self.embeddings:
            nn.init.normal_(embedding.weight, std=0.05)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        embedded = [table(categorical[:, i]) for i, table in enumerate(self.embeddings)]
        features = torch.cat([*embedded, numeric.to(embedded[0].dtype)], dim=1)
        return self.mlp(features).squeeze(1)


def build_model(config: TrainConfig) -> CTRModel:
    return CTRModel(
        cardinalities=categorical_cardinalities(config),
        numeric_dim=len(NUMERIC_FEATURES),
        embedding_dim=config.embedding_dim,
        hidden_sizes=config.hidden_sizes,
        dropout=config.dropout,
    )


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # Computed in fp32 even under bf16 autocast: the log-sigmoid of small probabilities loses
    # too much precision in bf16.
    return nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())
