"""The training configuration and the fingerprint that names a training run.

The fingerprint is what makes resuming safe: a checkpoint may only be resumed by a run that
would have produced the same bytes, i.e. the same result-affecting config, the same input data
versions and the same code version. The Dagster asset derives the checkpoint prefix from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from training.model_inputs import ModelInputs, ModelInputsError

# Fields that change how often we save or report, never what the model learns. They are left
# out of the fingerprint so an operator can tune checkpoint cadence on a preempted run without
# orphaning its checkpoints.
OPERATIONAL_FIELDS = frozenset(
    {"checkpoint_every_steps", "checkpoint_every_seconds", "keep_last", "log_every_steps"}
)

# The data-loading fields that only matter when streaming: an in-memory run leaves them (and
# data_loading itself) out of the fingerprint, so adding them renamed no existing run.
STREAMING_FIELDS = frozenset({"data_loading", "shuffle_buffer_rows", "loader_workers"})
DATA_LOADING = ("in_memory", "streaming")


class ConfigError(ValueError):
    """A configuration value that cannot produce a valid run."""


@dataclass(frozen=True)
class TrainConfig:
    # Model shape (training/model.py).
    embedding_dim: int = 4
    hidden_sizes: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    user_buckets: int = 100_000
    item_buckets: int = 50_000
    # Optimisation: AdamW, linear warmup then cosine decay down to lr * min_lr_ratio.
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    # Penalty on the batch's user/item factors' squared distance from their anchors (zero, or
    # the warm-start weights): the prior that lets a few impressions per user suffice.
    embedding_l2: float = 0.03
    batch_size: int = 512  # per process; the global batch is batch_size * world_size
    total_steps: int = 2000
    warmup_steps: int = 100
    # Training length from the data: with epochs > 0, a run makes ceil(epochs x the full global
    # batches in one pass over its training rows) steps, at most total_steps (then the cap), so
    # a window of another size gets as many passes, not as many steps. 0: total_steps steps.
    epochs: float = 0.0
    # Checkpointing and reporting (operational, see OPERATIONAL_FIELDS).
    checkpoint_every_steps: int = 500
    checkpoint_every_seconds: float = 900.0
    keep_last: int = 3
    log_every_steps: int = 50  # progress lines on stdout and the progress.json heartbeat
    # Reproducibility and evaluation.
    seed: int = 0
    eval_fraction: float = 0.1
    # Inputs: also read the user/item daily feature partitions among the input keys and give
    # each example its user's and its item's history from the days before its own day
    # (training/data.py). Off by default for the standalone trainer; the Dagster asset turns it
    # on and passes those partitions.
    history_features: bool = False
    # How examples reach the loop: "in_memory" loads the window into tensors and permutes all
    # of it every epoch; "streaming" reads the examples' parquet row groups as it trains and
    # shuffles within windows of about shuffle_buffer_rows rows, read by loader_workers
    # DataLoader processes per rank (0: in the training process), so memory follows the buffer,
    # not the window (training/streaming.py). The two see the rows in different orders, so
    # they train different (each reproducible) weights.
    data_loading: str = "in_memory"
    shuffle_buffer_rows: int = 1_048_576
    loader_workers: int = 0
    # What the model reads and how (training/model_inputs.py): its tables, join keys, as-of
    # rule, categorical and numeric inputs. Part of the fingerprint: other inputs, other model.
    # The Dagster asset fills it from the training_dataset manifest.
    model_inputs: ModelInputs | None = None

    def __post_init__(self) -> None:
        if isinstance(self.model_inputs, Mapping):  # JSON gives the declaration as an object
            try:
                object.__setattr__(self, "model_inputs", ModelInputs.from_dict(self.model_inputs))
            except (ModelInputsError, TypeError) as err:
                raise ConfigError(f"Invalid TrainConfig: model_inputs: {err}") from err
        problems = _type_problems(self)
        if problems:  # value checks below would only add noise about the same fields
            raise ConfigError("Invalid TrainConfig: " + "; ".join(problems))
        # JSON gives lists; a frozen dataclass must hold a hashable tuple.
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        # 1 and 1.0 are the same learning rate; they must not give two fingerprints.
        for f in dataclasses.fields(self):
            if f.type == "float":
                object.__setattr__(self, f.name, float(getattr(self, f.name)))
        positive_ints = (
            "embedding_dim",
            "user_buckets",
            "item_buckets",
            "batch_size",
            "total_steps",
            "checkpoint_every_steps",
            "log_every_steps",
            "shuffle_buffer_rows",
        )
        problems += [
            f"{name} must be >= 1 (got {getattr(self, name)})"
            for name in positive_ints
            if getattr(self, name) < 1
        ]
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            problems.append(f"hidden_sizes must be non-empty positive ints ({self.hidden_sizes})")
        if not 0 <= self.warmup_steps <= self.total_steps:
            problems.append("warmup_steps must be between 0 and total_steps")
        # k >= 2: the newest checkpoint can be the one a crash corrupted; we need a fallback.
        if self.keep_last < 2:
            problems.append(f"keep_last must be >= 2 (got {self.keep_last})")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1) (got {self.dropout})")
        if not 0.0 <= self.eval_fraction < 1.0:
            problems.append(f"eval_fraction must be in [0, 1) (got {self.eval_fraction})")
        if self.data_loading not in DATA_LOADING:
            problems.append(
                f"data_loading must be one of {DATA_LOADING} (got {self.data_loading!r})"
            )
        if self.loader_workers < 0:
            problems.append(f"loader_workers must be >= 0 (got {self.loader_workers})")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            problems.append(f"min_lr_ratio must be in [0, 1] (got {self.min_lr_ratio})")
        for name in ("lr", "weight_decay", "embedding_l2", "checkpoint_every_seconds", "epochs"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                problems.append(f"{name} must be a finite number >= 0 (got {value!r})")
        if problems:
            raise ConfigError("Invalid TrainConfig: " + "; ".join(problems))

    def steps_for(self, batches_per_epoch: int) -> int:
        """The run's optimizer steps, given the full global batches one pass holds."""
        if self.epochs == 0:
            return self.total_steps
        return max(1, min(self.total_steps, math.ceil(self.epochs * batches_per_epoch)))

    def schedule_for(self, steps: int) -> TrainConfig:
        """This config with the run's length as `total_steps` (what the LR schedule decays
        over), warmup no longer than the run."""
        return dataclasses.replace(
            self, total_steps=steps, warmup_steps=min(self.warmup_steps, steps), epochs=0.0
        )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["hidden_sizes"] = list(self.hidden_sizes)
        # Absent rather than null when unset: configs recorded before the declaration existed
        # keep their spelling, so their fingerprints still check.
        if self.model_inputs is None:
            del data["model_inputs"]
        else:
            data["model_inputs"] = self.model_inputs.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        # Unknown keys are refused: a typo ("learning_rate") would otherwise silently train
        # with the default and still get its own fingerprint.
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"Unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        return cls(**dict(data))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_problems(config: TrainConfig) -> list[str]:
    """JSON types are checked by hand: a string "0.01" must fail here, not deep in torch."""
    problems = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name == "hidden_sizes":
            ok = isinstance(value, list | tuple) and all(_is_int(h) for h in value)
        elif f.name == "model_inputs":
            ok = value is None or isinstance(value, ModelInputs)
        elif f.type == "bool":
            ok = isinstance(value, bool)
        elif f.type == "int":
            ok = _is_int(value)
        elif f.type == "str":
            ok = isinstance(value, str)
        else:  # float fields accept JSON integers too
            ok = _is_int(value) or isinstance(value, float)
        if not ok:
            problems.append(f"{f.name} has the wrong type ({value!r}, expected {f.type})")
    return problems


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no whitespace, NaN refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def resolve_input_versions(
    input_keys: Iterable[str], input_data_versions: Mapping[str, str]
) -> dict[str, str]:
    """One version per input key, so the fingerprint always pins which partitions were read.

    An empty mapping (a manual run) marks every key "unversioned": the keys still enter the
    fingerprint, their contents do not. A partial or mismatched mapping is an error, because it
    would fingerprint data the run does not read (or miss data it does).
    """
    keys = sorted(set(input_keys))
    if not input_data_versions:
        return {key: "unversioned" for key in keys}
    if set(input_data_versions) != set(keys):
        missing = sorted(set(keys) - set(input_data_versions))
        extra = sorted(set(input_data_versions) - set(keys))
        raise ConfigError(
            "input data versions must name exactly the input keys "
            f"(missing versions for {missing}; versions for keys not read: {extra})"
        )
    return {key: str(input_data_versions[key]) for key in keys}


def fingerprint(
    config: TrainConfig,
    input_data_versions: Mapping[str, str],
    code_version: str,
    init_from: Mapping[str, str] | None = None,
) -> str:
    """sha256 (hex) of everything that determines the trained weights. `init_from` (the
    warm-start checkpoint: its step key and manifest sha256) enters only when given, so cold
    starts keep the fingerprint they always had."""
    ignored = OPERATIONAL_FIELDS | (
        STREAMING_FIELDS if config.data_loading == "in_memory" else frozenset()
    )
    result_config = {k: v for k, v in config.to_dict().items() if k not in ignored}
    document = {
        "config": result_config,
        "input_data_versions": {str(k): str(v) for k, v in input_data_versions.items()},
        "code_version": str(code_version),
    }
    if init_from:
        document["init_from"] = {str(k): str(v) for k, v in init_from.items()}
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()
