"""What the model assets leave in object storage for each other, next to the checkpoints:

- `models/model_checkpoint/<D>.json`: the day's candidate (checkpoint step key, the sha256 of
  its manifest, fingerprint, trainer config, warm-start parent, metrics); written by
  `model_checkpoint` after the trainer completed;
- `evaluations/model_evaluation/<D>.json`: the verdict of `model_evaluation` on that candidate.

The production model for day D is the one the registry's `production` alias names (or, before
any promotion, the newest earlier day whose evaluation passed): day D's training warm-starts
from it and day D's evaluation compares against it.
"""

from __future__ import annotations

import datetime as dt
import json

from assets.partitions import training_partitions
from assets.publishing.keys import partition_object_key
from resources.registry.registry import DEFAULT_MODEL, PRODUCTION, AliasNotSet, ModelRegistry
from resources.storage.object_store import ObjectNotFound, ObjectStore

CANDIDATE_ASSET = "model_checkpoint"
EVALUATION_ASSET = "model_evaluation"
# A model older than this is too stale to start from or to be compared against.
PRODUCTION_LOOKBACK_DAYS = 7
# TrainConfig fields that decide the weights' shapes: a warm start needs them equal.
SHAPE_FIELDS = ("embedding_dim", "hidden_sizes", "user_buckets", "item_buckets")


def candidate_key(partition: str) -> str:
    return partition_object_key(
        CANDIDATE_ASSET, partition, training_partitions, layer="models", suffix="json"
    )


def evaluation_key(partition: str) -> str:
    return partition_object_key(
        EVALUATION_ASSET, partition, training_partitions, layer="evaluations", suffix="json"
    )


def _put(store: ObjectStore, key: str, record: dict) -> None:
    store.put_bytes(key, json.dumps(record, indent=1, sort_keys=True).encode())


def _get(store: ObjectStore, key: str) -> dict | None:
    try:
        return json.loads(store.get_bytes(key))
    except ObjectNotFound:
        return None


def write_candidate(store: ObjectStore, record: dict) -> None:
    _put(store, candidate_key(record["partition"]), record)


def read_candidate(store: ObjectStore, partition: str) -> dict | None:
    return _get(store, candidate_key(partition))


def write_evaluation(store: ObjectStore, record: dict) -> None:
    _put(store, evaluation_key(record["partition"]), record)


def read_evaluation(store: ObjectStore, partition: str) -> dict | None:
    return _get(store, evaluation_key(partition))


def production_model(store: ObjectStore, before: str) -> dict | None:
    """The candidate record of the model in production for day `before`.

    The registry's `production` alias decides, when it names a model of an earlier day. Before
    the first promotion, or for a backfilled day older than production (no model from its own
    future may seed or judge it), it is the newest earlier day whose evaluation passed; its
    promotion is then refused as a conflict, so an older day never takes production back.
    """
    try:
        serving = ModelRegistry(store, DEFAULT_MODEL).resolve(PRODUCTION)
    except AliasNotSet:
        serving = None
    if serving is not None and serving.day < before:
        return read_candidate(store, serving.day)
    day = dt.date.fromisoformat(before)
    first = dt.date.fromisoformat(training_partitions.get_first_partition_key())
    for offset in range(1, PRODUCTION_LOOKBACK_DAYS + 1):
        earlier = day - dt.timedelta(days=offset)
        if earlier < first:
            return None
        verdict = read_evaluation(store, earlier.isoformat())
        if verdict and verdict["passed"]:
            return verdict["candidate"]
    return None


def same_shape(config: dict, other: dict) -> bool:
    return all(config.get(field) == other.get(field) for field in SHAPE_FIELDS)
