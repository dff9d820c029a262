"""The day's evaluation: the candidate model and the current production model are scored on
the same held-out examples, and blocking checks decide whether the candidate may serve (and
be the next day's starting point).

Held-out rows are the evaluation split of day D's approved window (chosen by a hash of the
event id, so no model of any day trained on them). The production model is the candidate of
the newest earlier day whose evaluation passed (assets/model/records.py).
"""

import dagster as dg
from pydantic import Field

from assets.model.model_checkpoint import ASSET as CANDIDATE_ASSET
from assets.model.model_checkpoint import approved_inputs
from assets.model.records import (
    EVALUATION_ASSET,
    production_model,
    read_candidate,
    write_evaluation,
)
from assets.partitions import training_partitions
from assets.publishing.gate_reports import PartitionNotPublished
from resources.notifier import Alert, Notifier
from resources.storage.object_store import ObjectStore
from resources.storage.resource import ObjectStorage

ASSET = EVALUATION_ASSET
CHECKS = ("auc_floor", "no_regression")


class EvaluationConfig(dg.Config):
    """What a candidate must show to pass."""

    min_auc: float = Field(default=0.6, description="Held-out AUC the candidate must reach.")
    max_auc_drop: float = Field(
        default=0.01, description="How far below the production model's AUC it may fall."
    )


def _score(store: ObjectStore, model: dict, input_keys: list[str], eval_fraction: float) -> dict:
    from training.evaluate import score_checkpoint  # torch: imported by runs, not at load time

    return score_checkpoint(
        store,
        step_key=model["checkpoint_key"],
        manifest_sha256=model["manifest_sha256"],
        config=model["config"],
        input_keys=input_keys,
        eval_fraction=eval_fraction,
    )


def verdicts(candidate: dict, production: dict | None, config: EvaluationConfig) -> dict:
    """check name -> (passed, description) from the two scores."""
    auc = candidate["auc"]
    floor_ok = auc is not None and auc >= config.min_auc
    results = {"auc_floor": (floor_ok, f"candidate AUC {auc} vs floor {config.min_auc}")}
    if production is None:
        results["no_regression"] = (True, "no production model yet: nothing to regress from")
    else:
        bound = (production["auc"] or 0.0) - config.max_auc_drop
        ok = auc is not None and auc >= bound
        results["no_regression"] = (
            ok,
            f"candidate AUC {auc} vs production ({production['partition']}) AUC "
            f"{production['auc']} - {config.max_auc_drop}",
        )
    return results


@dg.asset(
    name=ASSET,
    description="Scores the day's candidate against the production model on the same held-out "
    "examples; blocking checks decide whether it may serve.",
    group_name="training",
    partitions_def=training_partitions,
    deps=[CANDIDATE_ASSET],
    check_specs=[
        dg.AssetCheckSpec(name, asset=ASSET, blocking=True, description=description)
        for name, description in (
            ("auc_floor", "The candidate's held-out AUC reaches the floor."),
            ("no_regression", "The candidate is not worse than the production model."),
        )
    ],
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    kinds={"pytorch"},
    tags={"layer": "training"},
)
def model_evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    storage: ObjectStorage,
    notifier: Notifier,
) -> dg.MaterializeResult:
    store = storage.open_store()
    partition = context.partition_key
    candidate = read_candidate(store, partition)
    if candidate is None:
        raise dg.Failure(
            f"{ASSET} {partition}: no trained candidate for {partition}. Materialize "
            f"{CANDIDATE_ASSET} for {partition} first.",
            allow_retries=False,
        )
    try:
        # The same verification as training: a window that lost its approval is not scored.
        input_keys = sorted(approved_inputs(store, partition))
    except PartitionNotPublished as err:
        raise dg.Failure(f"{ASSET} {partition}: {err}", allow_retries=False) from err
    eval_fraction = candidate["config"]["eval_fraction"]
    scores = {"candidate": _score(store, candidate, input_keys, eval_fraction)}
    production = production_model(store, before=partition)
    if production is not None:
        scores["production"] = {
            **_score(store, production, input_keys, eval_fraction),
            "partition": production["partition"],
        }
    results = verdicts(scores["candidate"], scores.get("production"), config)
    passed = all(ok for ok, _ in results.values())
    write_evaluation(
        store,
        {
            "partition": partition,
            "passed": passed,
            "candidate": candidate,
            "scores": scores,
            "checks": {name: {"passed": ok, "detail": d} for name, (ok, d) in results.items()},
            "run_id": context.run_id,
        },
    )
    for name, (ok, detail) in results.items():
        if not ok:
            notifier.send(
                Alert(
                    kind="evaluation_failed",
                    asset=ASSET,
                    partition=partition,
                    summary=f"{detail}. The candidate does not serve; the production model "
                    "stays and tomorrow's training starts from it. Inspect the candidate's "
                    "training run, then re-materialize model_checkpoint and model_evaluation.",
                    gate=name,
                    run_id=context.run_id,
                )
            )
    candidate_scores, production_scores = scores["candidate"], scores.get("production") or {}
    nan = float("nan")
    return dg.MaterializeResult(
        metadata={
            "passed": passed,
            "candidate_auc": dg.MetadataValue.float(candidate_scores["auc"] or nan),
            "candidate_log_loss": dg.MetadataValue.float(candidate_scores["log_loss"] or nan),
            "production_auc": dg.MetadataValue.float(production_scores.get("auc") or nan),
            "production_partition": production_scores.get("partition", "none"),
            "eval_examples": candidate_scores["examples"],
            "candidate_checkpoint": candidate["checkpoint_key"],
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=name,
                passed=ok,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"detail": detail},
            )
            for name, (ok, detail) in results.items()
        ],
    )
