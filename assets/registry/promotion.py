"""The model registry in Dagster: the daily promotion, the rollback job, and the asset whose
metadata names the production version.

- `model_promotion` (daily, after `model_evaluation`): registers the day's candidate as an
  immutable version record and, if its evaluation passed, moves `production` to it by
  compare-and-swap against the production version it was evaluated against. If production
  moved in between, it is refused with the conflict (re-evaluate, do not retry blindly).
- `rollback_model_job` (launchpad): moves an alias to a named version or "previous", by CAS,
  recording why.
- `production_model`: which version serves; every promotion and rollback records a
  materialization of it, so its page always names the current production version.
"""

import hashlib
import json
from typing import Any

import dagster as dg
from pydantic import Field

from assets.model.evaluation import ASSET as EVALUATION_ASSET
from assets.model.model_checkpoint import ASSET as CANDIDATE_ASSET
from assets.model.model_checkpoint import read_manifest
from assets.model.records import read_candidate, read_evaluation
from assets.model.training_dataset import manifest_key as dataset_manifest_key
from assets.partitions import training_partitions
from assets.publishing.gate_reports import PartitionNotPublished
from resources.paths import PROJECT_ROOT
from resources.registry.registry import (
    PRODUCTION,
    AliasState,
    ModelRegistry,
    ModelVersion,
    PromotionConflict,
    RegistryError,
    environment_fingerprint,
    promote,
)
from resources.registry.resource import ModelRegistryResource
from resources.storage.object_store import ObjectStore
from resources.storage.resource import ObjectStorage

PROMOTION_ASSET = "model_promotion"
PRODUCTION_ASSET = "production_model"
MANIFEST_NAME = "manifest.json"  # training/checkpoint.py's name, without importing torch


def version_id(partition: str, manifest_sha256: str) -> str:
    """A day's model version: the day and the checkpoint manifest it approved."""
    return f"{partition}-{manifest_sha256[:12]}"


def alias_metadata(registry: ModelRegistry, state: AliasState) -> dict[str, Any]:
    record = registry.get_version(state.version)
    auc = record.evaluation.get("candidate_auc")
    return {
        "version": state.version,
        "day": record.day,
        "alias": state.alias,
        "move_sequence": state.move.sequence,
        "moved_from": state.move.from_version or "none",
        "why": state.move.why,
        "moved_by_run": state.move.run_id,
        "moved_at": state.move.moved_at,
        "checkpoint_key": record.checkpoint_key,
        "manifest_sha256": record.manifest_sha256,
        "eval_auc": dg.MetadataValue.float(float("nan") if auc is None else float(auc)),
    }


def _record_production(
    context: dg.OpExecutionContext | dg.AssetExecutionContext, registry: ModelRegistry
) -> None:
    state = registry.read_alias(PRODUCTION)
    if state is not None:
        context.log_event(
            dg.AssetMaterialization(
                asset_key=PRODUCTION_ASSET,
                description=f"production is {state.version}",
                metadata=alias_metadata(registry, state),
            )
        )


def _checkpoint_lineage(context: dg.AssetExecutionContext, partition: str) -> dict[str, Any]:
    """code_version / torch_version / image_digest of the day's model_checkpoint run."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(CANDIDATE_ASSET), asset_partitions=[partition]),
        limit=1,
    ).records
    if not records or records[0].asset_materialization is None:
        return {}
    metadata = records[0].asset_materialization.metadata
    return {name: metadata[name].value for name in metadata}


def _verified_manifest(store: ObjectStore, candidate: dict) -> dict:
    key = f"{candidate['checkpoint_key']}/{MANIFEST_NAME}"
    data = store.get_bytes(key)
    digest = hashlib.sha256(data).hexdigest()
    if digest != candidate["manifest_sha256"]:
        raise dg.Failure(
            f"{PROMOTION_ASSET}: checkpoint manifest {store.uri(key)} hashes to {digest[:12]}, "
            f"the evaluated candidate's is {candidate['manifest_sha256'][:12]}. The checkpoint "
            f"changed after evaluation: re-materialize {EVALUATION_ASSET} for "
            f"{candidate['partition']}.",
            allow_retries=False,
        )
    return json.loads(data)


def build_version_record(
    context: dg.AssetExecutionContext, store: ObjectStore, evaluation: dict
) -> ModelVersion:
    candidate = evaluation["candidate"]
    partition = candidate["partition"]
    manifest = _verified_manifest(store, candidate)
    lineage = _checkpoint_lineage(context, partition)
    try:
        dataset_manifest = read_manifest(store, partition)
    except PartitionNotPublished:
        dataset_manifest = {"inputs": [], "missing": True}
    parent = candidate.get("warm_start_from")
    parent_record = read_candidate(store, parent) if parent else None
    scores = evaluation["scores"]
    return ModelVersion(
        version=version_id(partition, candidate["manifest_sha256"]),
        day=partition,
        checkpoint_key=candidate["checkpoint_key"],
        checkpoint_manifest_uri=store.uri(f"{candidate['checkpoint_key']}/{MANIFEST_NAME}"),
        manifest_sha256=candidate["manifest_sha256"],
        config=candidate["config"],
        dataset={
            "manifest_key": dataset_manifest_key(partition),
            "inputs": dataset_manifest.get("inputs", []),
            "input_data_versions": candidate.get("inputs", {}),
        },
        fingerprint=candidate["fingerprint"],
        parent_version=(
            version_id(parent, parent_record["manifest_sha256"]) if parent_record else None
        ),
        code_version=str(lineage.get("code_version", "unknown: no model_checkpoint record")),
        environment=environment_fingerprint(PROJECT_ROOT / "requirements.lock"),
        image_digest=lineage.get("image_digest"),
        torch_version=str(
            lineage.get("torch_version")
            or manifest.get("metadata", {}).get("torch_version", "unknown")
        ),
        metrics=candidate.get("metrics", {}),
        evaluation={
            "passed": evaluation["passed"],
            "checks": evaluation["checks"],
            "candidate_auc": scores["candidate"].get("auc"),
            "production_partition": scores.get("production", {}).get("partition"),
            "production_auc": scores.get("production", {}).get("auc"),
            "evaluation_run_id": evaluation.get("run_id"),
        },
        run_id=context.run_id,
    )


def evaluated_against(store: ObjectStore, evaluation: dict) -> str | None:
    """The registry version of the production model the evaluation compared with."""
    partition = evaluation["scores"].get("production", {}).get("partition")
    if partition is None:
        return None
    production = read_candidate(store, partition)
    if production is None:
        raise dg.Failure(
            f"{PROMOTION_ASSET}: the evaluation compared against the model of {partition}, "
            f"whose candidate record is gone. Re-materialize {EVALUATION_ASSET}.",
            allow_retries=False,
        )
    return version_id(partition, production["manifest_sha256"])


@dg.asset(
    name=PROMOTION_ASSET,
    description="Registers the day's candidate and, if its evaluation passed, makes it the "
    "production model by compare-and-swap against the version it was evaluated against.",
    group_name="training",
    partitions_def=training_partitions,
    deps=[EVALUATION_ASSET],
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    tags={"layer": "registry"},
)
def model_promotion(
    context: dg.AssetExecutionContext,
    storage: ObjectStorage,
    registry: ModelRegistryResource,
) -> dg.MaterializeResult:
    partition = context.partition_key
    store = storage.open_store()
    evaluation = read_evaluation(store, partition)
    if evaluation is None:
        raise dg.Failure(
            f"{PROMOTION_ASSET} {partition}: no evaluation for {partition}. Materialize "
            f"{EVALUATION_ASSET} for {partition} first.",
            allow_retries=False,
        )
    if not evaluation["passed"]:
        failed = [name for name, check in evaluation["checks"].items() if not check["passed"]]
        raise dg.Failure(
            f"{PROMOTION_ASSET} {partition}: the candidate failed {failed} in "
            f"{EVALUATION_ASSET}; it is not registered for serving and production stays.",
            allow_retries=False,
        )
    models = registry.open_registry()
    record = models.register(build_version_record(context, store, evaluation))
    expected = evaluated_against(store, evaluation)
    auc = evaluation["scores"]["candidate"].get("auc")
    why = f"daily evaluation of {partition} passed (AUC {auc}) against {expected or 'none'}"
    try:
        result = promote(models, record.version, expected, why, context.run_id)
    except PromotionConflict as err:
        raise dg.Failure(
            f"{PROMOTION_ASSET} {partition}: {err} Re-materialize {EVALUATION_ASSET} and "
            f"{PROMOTION_ASSET} for {partition} so the candidate is compared with "
            f"{err.observed!r}.",
            allow_retries=False,
            metadata={"candidate": record.version, "observed_production": str(err.observed)},
        ) from err
    _record_production(context, models)
    return dg.MaterializeResult(
        metadata={
            "version": record.version,
            "promoted": result.moved,
            "production_before": expected or "none",
            "move_sequence": result.move.sequence,
            "why": why,
        }
    )


@dg.asset(
    name=PRODUCTION_ASSET,
    description="The model version serving as production (its metadata names it); every "
    "promotion and rollback records a new materialization.",
    group_name="training",
    tags={"layer": "registry"},
)
def production_model(
    context: dg.AssetExecutionContext, registry: ModelRegistryResource
) -> dg.MaterializeResult:
    models = registry.open_registry()
    state = models.read_alias(PRODUCTION)
    if state is None:
        raise dg.Failure(
            f"{PRODUCTION_ASSET}: no production version yet. Materialize {PROMOTION_ASSET} for a "
            "day whose evaluation passed.",
            allow_retries=False,
        )
    return dg.MaterializeResult(metadata=alias_metadata(models, state))


class RollbackConfig(dg.Config):
    """Which version the alias should name again, and why (recorded in its history)."""

    to_version: str = Field(description='A registered version id, or "previous".')
    why: str = Field(description="The reason, recorded in the alias history.")
    alias: str = Field(default=PRODUCTION, description="The alias to move.")
    expected_current: str | None = Field(
        default=None,
        description="The version you saw in the UI; refused if the alias names another by now.",
    )


@dg.op(description="Moves a model alias back by compare-and-swap, recording why.")
def move_model_alias(
    context: dg.OpExecutionContext, config: RollbackConfig, registry: ModelRegistryResource
) -> None:
    models = registry.open_registry()
    state = models.read_alias(config.alias)
    if state is None:
        raise dg.Failure(
            f"alias {config.alias!r} of model {models.model!r} names no version; nothing to "
            "roll back.",
            allow_retries=False,
        )
    expected = config.expected_current or state.version
    try:
        target = (
            models.previous_version(config.alias)
            if config.to_version == "previous"
            else config.to_version
        )
        result = models.move_alias(
            config.alias, target, expected=expected, why=config.why, run_id=context.run_id
        )
    except (RegistryError, ValueError) as err:
        raise dg.Failure(f"rollback of {config.alias!r}: {err}", allow_retries=False) from err
    context.log.info(
        f"alias {config.alias!r}: {result.move.from_version} -> {result.move.to_version} "
        f"(move {result.move.sequence}{'' if result.moved else ', already there'})"
    )
    if config.alias == PRODUCTION:
        _record_production(context, models)


@dg.job(
    name="rollback_model_job",
    description="Moves the production alias (or another) back to a named version or "
    '"previous", by compare-and-swap, recording why in its history.',
)
def rollback_model_job() -> None:
    move_model_alias()


registry_assets = [model_promotion, production_model]
