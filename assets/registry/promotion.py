"""The model registry in Dagster: the daily promotion, the rollback job, and the asset whose
metadata names the production version.

- `model_promotion` (daily, after `model_evaluation`): if the day's evaluation passed, registers
  the candidate as an immutable version record (naming the evaluation report by key and
  sha256) and moves `production` to it by compare-and-swap against exactly the version the
  evaluation resolved from the alias. If production moved in between, it re-decides: the
  candidate is re-scored against the new production on the same held-out rows with the same
  checks, and only if it still passes is there one more compare-and-swap, against that new
  version; otherwise it is refused. Never a blind retry.
- `rollback_model_job` (launchpad): moves an alias back ("previous": the version that served
  before the current one was promoted, skipping versions rolled back; the version left is
  marked so that no daily promotion brings it back) or to a named version, by CAS, recording
  why.
- `production_model`: which version serves; every promotion and rollback records a
  materialization of it, so its page always names the current production version.
"""

import hashlib
import json
from typing import Any

import dagster as dg
from pydantic import Field

from assets.model.evaluation import ASSET as EVALUATION_ASSET
from assets.model.evaluation import (
    EvaluationConfig,
    evaluate_candidate,
    failed_checks,
    report_inputs,
)
from assets.model.model_checkpoint import ASSET as CANDIDATE_ASSET
from assets.model.model_checkpoint import read_manifest
from assets.model.records import (
    ProductionRef,
    production_for_version,
    read_candidate,
    read_evaluation,
    read_report,
    write_report,
)
from assets.model.training_dataset import manifest_key as dataset_manifest_key
from assets.partitions import training_partitions
from assets.publishing.gate_reports import PartitionNotPublished
from resources.paths import PROJECT_ROOT
from resources.registry.promotion_identity import PROMOTION_RUN_TAGS, PROMOTION_STEP_TAGS
from resources.registry.registry import (
    PRODUCTION,
    AliasState,
    ModelRegistry,
    ModelVersion,
    MoveResult,
    PromotionConflict,
    RegistryError,
    RolledBackVersion,
    environment_fingerprint,
    promote,
)
from resources.registry.resource import ModelRegistryResource
from resources.storage.object_store import ObjectNotFound, ObjectStore
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
    context: dg.AssetExecutionContext,
    store: ObjectStore,
    report: dict,
    report_key: str,
    report_sha256: str,
) -> ModelVersion:
    candidate = report["candidate"]
    partition = candidate["partition"]
    manifest = _verified_manifest(store, candidate)
    lineage = _checkpoint_lineage(context, partition)
    try:
        dataset_manifest = read_manifest(store, partition)
    except PartitionNotPublished:
        dataset_manifest = {"inputs": [], "missing": True}
    # The parent as training verified and fingerprinted it (D-1's record may have been retrained
    # since); older candidate records name only its day.
    parent = candidate.get("parent")
    if parent is None and candidate.get("warm_start_from"):
        parent = read_candidate(store, candidate["warm_start_from"])
        parent = parent and {"day": parent["partition"], **parent}
    scores = report["scores"]
    production = report["production"]
    scored = production.get("model") or {}
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
        parent_version=(version_id(parent["day"], parent["manifest_sha256"]) if parent else None),
        code_version=str(lineage.get("code_version", "unknown: no model_checkpoint record")),
        # The environment the model was trained in (the training run's drift gate recorded it);
        # this process's own only for records of models trained before the gate existed.
        environment=lineage.get("environment")
        or environment_fingerprint(PROJECT_ROOT / "requirements.lock"),
        image_digest=lineage.get("image_digest"),
        torch_version=str(
            lineage.get("torch_version")
            or manifest.get("metadata", {}).get("torch_version", "unknown")
        ),
        metrics=candidate.get("metrics", {}),
        evaluation={
            # The full report, immutable, named by key and content hash (read_report verifies).
            "report_key": report_key,
            "report_uri": store.uri(report_key),
            "report_sha256": report_sha256,
            "passed": report["passed"],
            "decided_by": report.get("decided_by"),
            "checks": report["checks"],
            "candidate_auc": scores["candidate"].get("auc"),
            "candidate_log_loss": scores["candidate"].get("log_loss"),
            "baseline_log_loss": scores["baseline"].get("log_loss"),
            "production_version": production.get("version"),
            "production_checkpoint_key": scored.get("checkpoint_key"),
            "production_partition": scored.get("partition"),
            "production_auc": scores.get("production", {}).get("auc"),
            "evaluation_run_id": report.get("run_id"),
        },
        run_id=context.run.run_id,
    )


def _evaluation_report(store: ObjectStore, partition: str) -> tuple[dict, str, str]:
    """The day's evaluation report (verified against the sha256 its verdict recorded)."""
    verdict = read_evaluation(store, partition)
    if verdict is None:
        raise dg.Failure(
            f"{PROMOTION_ASSET} {partition}: no evaluation for {partition}. Materialize "
            f"{EVALUATION_ASSET} for {partition} first.",
            allow_retries=False,
        )
    key, sha256 = verdict.get("report_key"), verdict.get("report_sha256")
    if not key or not sha256:
        raise dg.Failure(
            f"{PROMOTION_ASSET} {partition}: the evaluation of {partition} predates evaluation "
            f"reports (no report key). Re-materialize {EVALUATION_ASSET} for {partition}.",
            allow_retries=False,
        )
    try:
        return read_report(store, key, sha256), key, sha256
    except (ObjectNotFound, ValueError) as err:
        raise dg.Failure(
            f"{PROMOTION_ASSET} {partition}: {err}. Re-materialize {EVALUATION_ASSET} for "
            f"{partition}.",
            allow_retries=False,
        ) from err


def _redecide(
    context: dg.AssetExecutionContext,
    store: ObjectStore,
    models: ModelRegistry,
    report: dict,
    report_ref: tuple[str, str],
    candidate_version: str,
    conflict: PromotionConflict,
) -> tuple[MoveResult, dict[str, Any]]:
    """Production moved after the evaluation: judge the candidate again, against the version
    production names now, on the same held-out rows with the same thresholds. Only a pass
    makes one more compare-and-swap, expecting exactly that version; anything else refuses."""
    partition = report["partition"]
    expected, observed = conflict.expected, conflict.observed
    moved = (
        f"{PROMOTION_ASSET} {partition}: production moved from {expected!r} to {observed!r} "
        f"after {EVALUATION_ASSET} judged candidate {candidate_version!r} ({conflict})"
    )
    context.log.warning(f"{moved}. Re-deciding against {observed!r} on the same held-out rows.")
    try:
        production = production_for_version(models, observed, before=partition)
    except RegistryError as err:
        raise dg.Failure(f"{moved}. Cannot re-decide: {err}", allow_retries=False) from err
    if production.refusal:
        raise dg.Failure(
            f"{moved}. Refused: {production.refusal}. Production stays {observed!r}.",
            allow_retries=False,
        )
    redecision = evaluate_candidate(
        store,
        report["candidate"],
        production,
        **report_inputs(store, report),
        eval_fraction=report["eval_fraction"],
        config=EvaluationConfig(**report["config"]),
        run_id=context.run.run_id,
        kind="re-decision",
    )
    redecision["re_decision_of"] = {
        "report_key": report_ref[0],
        "report_sha256": report_ref[1],
        "expected_production": expected,
        "observed_production": observed,
    }
    key, sha256 = write_report(store, redecision)
    rows = redecision["scores"]["candidate"]["examples"]
    failed = failed_checks(redecision)
    if failed:
        details = "; ".join(f"{name}: {detail}" for name, detail in failed.items())
        raise dg.Failure(
            f"{moved}. Re-scored on the same {rows} held-out rows against {observed!r}, the "
            f"candidate fails {sorted(failed)}: {details}. Refused: production stays "
            f"{observed!r}; the candidate stays registered, unpromoted. Report: "
            f"{store.uri(key)}",
            allow_retries=False,
            metadata={
                "candidate": candidate_version,
                "observed_production": str(observed),
                "re_decision_report": dg.MetadataValue.path(store.uri(key)),
            },
        )
    auc = redecision["scores"]["candidate"].get("auc")
    why = (
        f"daily evaluation of {partition} was against {expected or 'none'}, production moved to "
        f"{observed or 'none'}; re-decided against it on the same {rows} rows: passed (AUC "
        f"{auc}; report {key} sha256 {sha256})"
    )
    try:
        result = promote(models, candidate_version, observed, why, context.run.run_id)
    except PromotionConflict as again:
        raise dg.Failure(
            f"{moved}. The re-decision against {observed!r} passed, but production moved again "
            f"before its compare-and-swap: {again} No further retry: re-materialize "
            f"{EVALUATION_ASSET} and {PROMOTION_ASSET} for {partition}.",
            allow_retries=False,
            metadata={"candidate": candidate_version, "observed_production": str(again.observed)},
        ) from again
    except RolledBackVersion as err:
        raise dg.Failure(f"{moved}. {err}", allow_retries=False) from err
    return result, {
        "re_decided_against": observed or "none",
        "re_decision_report": dg.MetadataValue.path(store.uri(key)),
        "re_decision_report_sha256": sha256,
        "why": why,
    }


@dg.asset(
    name=PROMOTION_ASSET,
    description="Registers the day's candidate and, if its evaluation passed, makes it the "
    "production model by compare-and-swap against the version it was evaluated against.",
    group_name="training",
    partitions_def=training_partitions,
    deps=[EVALUATION_ASSET],
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    # Its pod, alone in the daily training run with the guard's, holds the promotion identity.
    op_tags=PROMOTION_STEP_TAGS,
    tags={"layer": "registry"},
)
def model_promotion(
    context: dg.AssetExecutionContext,
    storage: ObjectStorage,
    registry: ModelRegistryResource,
) -> dg.MaterializeResult:
    partition = context.partition_key
    store = storage.open_store()
    report, key, sha256 = _evaluation_report(store, partition)
    if not report["passed"]:
        failed = failed_checks(report)
        raise dg.Failure(
            f"{PROMOTION_ASSET} {partition}: the candidate failed {sorted(failed)} in "
            f"{EVALUATION_ASSET}; it is not registered for serving and production stays. "
            + "; ".join(f"{name}: {detail}" for name, detail in failed.items()),
            allow_retries=False,
        )
    production = ProductionRef(**report["production"])
    if production.refusal:
        raise dg.Failure(
            f"{PROMOTION_ASSET} {partition}: refused: {production.refusal}. Production stays "
            f"{production.version!r}.",
            allow_retries=False,
        )
    models = registry.open_registry()
    record = models.register(build_version_record(context, store, report, key, sha256))
    # Exactly the version the evaluation read from the alias: nothing re-resolved here.
    expected = production.version
    auc = report["scores"]["candidate"].get("auc")
    why = (
        f"daily evaluation of {partition} passed (AUC {auc}) against {expected or 'none'} "
        f"(report {key} sha256 {sha256})"
    )
    extra: dict[str, Any] = {"re_decided_against": "no"}
    try:
        result = promote(models, record.version, expected, why, context.run.run_id)
    except PromotionConflict as err:
        result, extra = _redecide(
            context, store, models, report, (key, sha256), record.version, err
        )
        why = extra["why"]
    except RolledBackVersion as err:
        raise dg.Failure(
            f"{PROMOTION_ASSET} {partition}: {err} Production stays {expected!r}.",
            allow_retries=False,
        ) from err
    if result.history_pending:
        # Committed: production serves the candidate; only its history record is late.
        context.log.warning(result.history_pending)
    _record_production(context, models)
    return dg.MaterializeResult(
        metadata={
            **extra,
            "version": record.version,
            "promoted": result.moved,
            "production_before": result.move.from_version or "none",
            "evaluated_against": expected or "none",
            "move_sequence": result.move.sequence,
            "why": why,
            "evaluation_report": dg.MetadataValue.path(store.uri(key)),
            "evaluation_report_sha256": sha256,
            "history_record": result.history_pending or "written",
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

    to_version: str = Field(
        description='"previous": the version that served before the current one was promoted '
        "(skipping versions rolled back; the current one is marked rolled back), or a "
        "registered version id."
    )
    why: str = Field(description="The reason, recorded in the alias history.")
    alias: str = Field(default=PRODUCTION, description="The alias to move.")
    expected_current: str | None = Field(
        default=None,
        description="The version you saw in the UI; refused if the alias names another by now.",
    )
    reinstate: str | None = Field(
        default=None,
        description="To move to a version that was rolled back, name it here as well.",
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
        if config.to_version == "previous":
            result = models.rollback(
                config.alias, expected=expected, why=config.why, run_id=context.run.run_id
            )
        else:
            result = models.move_alias(
                config.alias,
                config.to_version,
                expected=expected,
                why=config.why,
                run_id=context.run.run_id,
                reinstate=config.reinstate,
            )
    except (RegistryError, ValueError) as err:
        raise dg.Failure(f"rollback of {config.alias!r}: {err}", allow_retries=False) from err
    context.log.info(
        f"alias {config.alias!r}: {result.move.from_version} -> {result.move.to_version} "
        f"({result.move.kind} {result.move.sequence}{'' if result.moved else ', already there'})"
    )
    if result.history_pending:
        context.log.warning(result.history_pending)
    if config.alias == PRODUCTION:
        _record_production(context, models)


@dg.job(
    name="rollback_model_job",
    description="Moves the production alias (or another) back to the version that served before "
    'the current one ("previous", marking the current one rolled back) or to a named version, by '
    "compare-and-swap, recording why in its history.",
    tags=PROMOTION_RUN_TAGS,
)
def rollback_model_job() -> None:
    move_model_alias()


registry_assets = [model_promotion, production_model]
