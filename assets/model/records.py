"""What the model assets leave in object storage for each other, next to the checkpoints:

- `models/model_checkpoint/<D>.json`: the day's candidate (checkpoint step key, the sha256 of
  its manifest, fingerprint, trainer config, warm-start parent, metrics); written by
  `model_checkpoint` after the trainer completed;
- `evaluations/model_evaluation/<D>.json`: the verdict of `model_evaluation` on that candidate
  (the latest one: the full report, plus the key and sha256 of its immutable copy);
- `<checkpoint prefix>/evaluations/<sha256[:16]>.json`: every evaluation report, next to the
  model it judged (beside its `step-…` directories, which checkpoint pruning never touches),
  written create-only under its content hash, so the version record can name it by key and
  sha256 and nobody can change it afterwards.

The production model for day D is the one the registry's `production` alias names (or, before
any promotion, the newest earlier day whose evaluation passed): day D's training warm-starts
from it and day D's evaluation compares against it. The evaluation resolves the alias once
(`resolve_production`) and records the version it read: that exact version is what the
promotion's compare-and-swap expects.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from assets.partitions import training_partitions
from assets.publishing.keys import partition_object_key
from resources.registry.registry import (
    DEFAULT_MODEL,
    PRODUCTION,
    AliasNotSet,
    ModelRegistry,
    ModelVersion,
    canonical_json,
)
from resources.storage.object_store import ObjectNotFound, ObjectStore, PreconditionFailed

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


def report_key(candidate: dict, report_sha256: str) -> str:
    """Where an evaluation report of `candidate` lives: beside its checkpoint's step dirs."""
    prefix = candidate["checkpoint_key"].rsplit("/", 1)[0]
    return f"{prefix}/evaluations/{report_sha256[:16]}.json"


def write_report(store: ObjectStore, report: dict) -> tuple[str, str]:
    """Write the full report create-only under its content hash; (key, sha256)."""
    data = canonical_json(report)
    digest = hashlib.sha256(data).hexdigest()
    key = report_key(report["candidate"], digest)
    try:
        store.put_if_absent(key, data)  # type: ignore[attr-defined]
    except PreconditionFailed:
        if store.get_bytes(key) != data:  # a 64-bit prefix collision: never overwrite
            raise RuntimeError(
                f"evaluation report {store.uri(key)} exists with other content; inspect it"
            ) from None
    return key, digest


def read_report(store: ObjectStore, key: str, sha256: str) -> dict:
    """The report at `key`, refused unless its bytes hash to `sha256`."""
    data = store.get_bytes(key)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ValueError(
            f"evaluation report {store.uri(key)} hashes to {digest[:12]}, its verdict recorded "
            f"{sha256[:12]}: the report changed after the evaluation. Re-materialize "
            f"{EVALUATION_ASSET}."
        )
    return json.loads(data)


@dataclass(frozen=True)
class ProductionRef:
    """What a day's candidate is judged against, resolved once.

    `version` is the version the registry's `production` alias named when it was read (None:
    unset), the exact expectation of the promotion's compare-and-swap. `model` is the model
    scored as production (`partition`, `checkpoint_key`, `manifest_sha256`, `config`, and the
    registry `version` when it came from the registry), or None: baseline only. `refusal` says
    why a candidate judged against it may not be promoted at all.
    """

    version: str | None
    model: dict | None
    source: str
    refusal: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _registered_model(record: ModelVersion) -> dict:
    return {
        "partition": record.day,
        "version": record.version,
        "checkpoint_key": record.checkpoint_key,
        "manifest_sha256": record.manifest_sha256,
        "config": record.config,
    }


def _newest_passing(store: ObjectStore, before: str) -> dict | None:
    """The candidate record of the newest earlier day (within the lookback) that passed."""
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


def production_for_version(
    registry: ModelRegistry, version: str | None, before: str
) -> ProductionRef:
    """The ProductionRef for an alias that names `version` (None: unset), judging day `before`.

    A registered version of day `before` or later may not judge it (no model from a day's own
    future), and a candidate of that day may not replace it: a backfilled day never takes
    production back. The reference scored then is the newest earlier passing day (if any).
    """
    if version is None:
        return ProductionRef(None, None, "no production version: baseline only")
    record = registry.get_version(version)
    if record.day < before:
        return ProductionRef(version, _registered_model(record), f"registry alias {PRODUCTION!r}")
    return ProductionRef(
        version,
        _newest_passing(registry.store, before),
        f"newest passing evaluation before {before} (production is of day {record.day})",
        refusal=f"production serves {version!r}, a model of day {record.day}, which is not older "
        f"than {before}: a backfilled day never takes production back",
    )


def resolve_production(registry: ModelRegistry, before: str) -> ProductionRef:
    """Read the `production` alias once and say what day `before`'s candidate is judged
    against (see production_for_version). Before the first promotion, the reference is the
    newest earlier day whose evaluation passed, and the CAS expectation is "still unset"."""
    state = registry.read_alias(PRODUCTION)
    if state is None:
        model = _newest_passing(registry.store, before)
        source = (
            "nothing promoted yet: the newest passing evaluation before " + before
            if model
            else "nothing promoted yet: baseline only"
        )
        return ProductionRef(None, model, source)
    return production_for_version(registry, state.version, before)


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
    return _newest_passing(store, before)


def same_shape(config: dict, other: dict) -> bool:
    """Equal shape fields, and equal model-input declarations where both configs record one
    (an older record has none: the weights' shapes are checked after this anyway)."""
    mine, theirs = config.get("model_inputs"), other.get("model_inputs")
    if mine is not None and theirs is not None and mine != theirs:
        return False
    return all(config.get(field) == other.get(field) for field in SHAPE_FIELDS)
