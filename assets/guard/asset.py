"""`model_next_day_guard`: the first data production has never seen judges it.

For day D+1, once its approved training window exists, the guard scores the production model
promoted on day D and the version that promotion replaced on every example of D+1 (no model
of day D or earlier trained on any of them), with the evaluation's metrics: AUC, log loss,
calibration, AUC per segment. Every number is numeric metadata of the day, so the UI plots
them. If production is worse than the version it replaced beyond the tolerance and beyond the
paired-bootstrap interval of the day's rows (assets/guard/decision.py), the guard rolls
production back to that version by compare-and-swap against exactly the version it judged,
marks the demoted version, and alerts once, naming both versions, the metrics and the interval.

Nothing to judge is not an error: no production yet, a first model with no predecessor, or a
production model that was not promoted on day D (already judged, or a rollback) is recorded
and left alone. A re-run reads the day's first verdict back (assets/guard/records.py) and
neither rolls back nor alerts again.
"""

import datetime as dt
from typing import Any

import dagster as dg

from assets.guard.decision import GuardConfig, decide
from assets.guard.records import (
    ALERTS_PREFIX,
    GUARD_ASSET,
    claim_verdict,
    read_rollback,
    read_verdict,
    record_rollback,
)
from assets.guard.rollback import roll_back
from assets.model.evaluation import metric_slug, metric_value
from assets.model.model_checkpoint import approved_manifest
from assets.model.training_dataset import ASSET as DATASET_ASSET
from assets.model.training_dataset import declaration, model_input_tables
from assets.partitions import training_partitions
from assets.publishing.gate_reports import PartitionNotPublished
from assets.registry.promotion import PRODUCTION_ASSET, alias_metadata
from assets.slo.alerts import alert_once
from resources.notifier import Alert, Notifier
from resources.registry.registry import PRODUCTION, ROLLBACK, ModelRegistry, ModelVersion
from resources.registry.resource import ModelRegistryResource
from resources.storage.object_store import ObjectStore
from resources.storage.resource import ObjectStorage
from training.model_inputs import ModelInputs

METRICS = ("auc", "log_loss", "ece", "mean_predicted_ctr")


def _signed(value: float | None) -> str:
    return "undefined" if value is None else f"{value:+.4f}"


def previous_day(partition: str) -> str:
    return (dt.date.fromisoformat(partition) - dt.timedelta(days=1)).isoformat()


def day_inputs(store: ObjectStore, partition: str) -> tuple[dict[str, str], ModelInputs]:
    """({object key: table}, declaration) of the day's own examples and the history the day's
    rows are served with (the days before it), from its verified training-set manifest; not
    the window's older examples."""
    manifest = approved_manifest(store, partition)  # re-verifies every entry
    declared = declaration(manifest)
    own_day = {
        entry["object_key"]
        for entry in manifest["inputs"]
        if entry["asset"] == declared.examples.table and entry["partition"] == partition
    }
    tables = {
        key: table
        for key, table in model_input_tables(manifest).items()
        if table != declared.examples.table or key in own_day
    }
    return dict(sorted(tables.items())), declared


def judged_pair(
    models: ModelRegistry, partition: str
) -> tuple[int | None, ModelVersion | None, ModelVersion | None, str]:
    """(alias move sequence, production, the version its promotion replaced, why) for the
    day. The replaced version is named only when the latest move was a promotion forward (to
    a newer day); the guard acts only on a production model promoted on the day before."""
    state = models.read_alias(PRODUCTION)
    if state is None:
        return None, None, None, "no production version yet: nothing to judge"
    production = models.get_version(state.version)
    replaced = None
    if state.move.from_version is not None and state.move.kind != ROLLBACK:
        earlier = models.get_version(state.move.from_version)
        replaced = earlier if earlier.day < production.day else None
    sequence = state.move.sequence
    if production.day != previous_day(partition):
        return (
            sequence,
            production,
            replaced,
            (
                f"production {production.version!r} is of day {production.day}, not promoted on "
                f"{previous_day(partition)}: recorded, not judged"
            ),
        )
    if state.move.from_version is None:
        return (
            sequence,
            production,
            None,
            (
                f"production {production.version!r} is the first model, with no predecessor: "
                "recorded, not judged"
            ),
        )
    if replaced is None:
        return (
            sequence,
            production,
            None,
            (
                f"production {production.version!r} got there by a move back from "
                f"{state.move.from_version!r}, not by a promotion: recorded, not judged"
            ),
        )
    return sequence, production, replaced, "judged"


def _model(record: ModelVersion) -> dict:
    return {
        "version": record.version,
        "day": record.day,
        "checkpoint_key": record.checkpoint_key,
        "manifest_sha256": record.manifest_sha256,
        "config": record.config,
    }


def compute_verdict(
    store: ObjectStore, models: ModelRegistry, partition: str, config: GuardConfig, run_id: str
) -> dict[str, Any]:
    """Score production (and the version it replaced) on the day's rows and decide."""
    from training.evaluate import checkpoint_logits, model_scores, unseen_rows
    from training.paired_bootstrap import paired_difference

    sequence, production, replaced, why = judged_pair(models, partition)
    verdict: dict[str, Any] = {
        "partition": partition,
        "judged": False,
        "regressed": False,
        "why": why,
        "move_sequence": sequence,
        "production": production and _model(production),
        "replaced": replaced and _model(replaced),
        "scores": {},
        "difference": None,
        "findings": [],
        "config": config.model_dump(),
        "run_id": run_id,
        "decided_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
    }
    if production is None:
        return verdict
    rows = unseen_rows(store, *day_inputs(store, partition))
    logits = {}
    for who, record in (("production", production), ("replaced", replaced)):
        if record is None:
            continue
        logits[who] = checkpoint_logits(
            store,
            step_key=record.checkpoint_key,
            manifest_sha256=record.manifest_sha256,
            config=record.config,
            rows=rows,
        )
        verdict["scores"][who] = model_scores(
            rows.labels, logits[who], rows.segments, config.calibration_bins
        )
    if replaced is None or why != "judged":
        return verdict
    difference = paired_difference(
        rows.labels,
        logits["production"],
        logits["replaced"],
        resamples=config.resamples,
        confidence=config.confidence,
        seed=config.seed,
    ).to_json()
    decision = decide(difference, config)
    verdict |= {
        "judged": decision.judged,
        "regressed": decision.regressed,
        "difference": difference,
        "findings": list(decision.findings),
    }
    if not decision.judged:
        verdict["why"] = "; ".join(decision.findings)
    return verdict


def _metadata(verdict: dict, outcome: str) -> dict[str, Any]:
    scores = verdict["scores"]
    metadata: dict[str, Any] = {
        "judged": verdict["judged"],
        "regressed": verdict["regressed"],
        "rolled_back": outcome == "rolled back",
        "outcome": outcome,
        "why": verdict["why"],
        "production_version": (verdict["production"] or {}).get("version", "none"),
        "replaced_version": (verdict["replaced"] or {}).get("version", "none"),
        "rows": dg.MetadataValue.int(int((scores.get("production") or {}).get("examples", 0))),
        "findings": "; ".join(verdict["findings"]) or "none",
    }
    for who in ("production", "replaced"):
        values = scores.get(who) or {}
        for metric in METRICS:
            metadata[f"{who}_{metric}"] = metric_value(values.get(metric))
    difference = verdict["difference"] or {}
    for metric in ("log_loss", "auc"):
        interval = difference.get(metric) or {}
        for part in ("estimate", "lower", "upper"):
            name = f"{metric}_difference" + ("" if part == "estimate" else f"_{part}")
            metadata[name] = metric_value(interval.get(part))
    production = scores.get("production") or {}
    replaced = scores.get("replaced") or {}
    for column, values in production.get("segments", {}).items():
        for value, segment in sorted(values.items()):
            name = f"{column}_{metric_slug(value)}"
            metadata[f"production_auc_{name}"] = metric_value(segment["auc"])
            metadata[f"rows_{name}"] = dg.MetadataValue.int(segment["rows"])
            theirs = replaced.get("segments", {}).get(column, {}).get(value, {})
            metadata[f"replaced_auc_{name}"] = metric_value(theirs.get("auc"))
    return metadata


def _act(
    context: dg.AssetExecutionContext,
    store: ObjectStore,
    models: ModelRegistry,
    notifier: Notifier,
    verdict: dict,
) -> str:
    """Roll back (once) and alert (once) for a regressed verdict; what happened, in words."""
    partition = verdict["partition"]
    judged, replaced = verdict["production"]["version"], verdict["replaced"]["version"]
    done = read_rollback(store, partition)
    if done is None:
        why = (
            f"{GUARD_ASSET} {partition}: production {judged!r} is worse than {replaced!r}, the "
            f"version it replaced, on the {verdict['difference']['rows']} rows of {partition}: "
            + "; ".join(verdict["findings"])
        )
        result = roll_back(
            models, expected=judged, to_version=replaced, why=why, run_id=context.run.run_id
        )
        if not result.rolled_back:
            context.log.warning(
                f"{GUARD_ASSET} {partition}: {judged!r} regressed, but nothing was rolled "
                f"back: {result.detail} (a newer move stands)"
            )
            return f"not rolled back: {result.detail}"
        state = models.read_alias(PRODUCTION)
        sequence = state.move.sequence if state is not None else None
        done = {"from": judged, "to": replaced, "sequence": sequence, "why": why}
        record_rollback(store, partition, {**done, "run_id": context.run.run_id})
        if state is not None:  # production_model's page names the restored version
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=PRODUCTION_ASSET,
                    description=f"production is {state.version} (rolled back by {GUARD_ASSET})",
                    metadata=alias_metadata(models, state),
                )
            )
    difference = verdict["difference"]
    alert_once(
        store,
        notifier,
        partition,
        "next_day_regression",
        Alert(
            kind="next_day_regression",
            asset=GUARD_ASSET,
            partition=partition,
            summary=f"production {judged!r} (promoted for {verdict['production']['day']}) is "
            f"worse than {replaced!r}, the version it replaced, on the "
            f"{difference['rows']} rows of {partition} no model trained on: "
            + "; ".join(verdict["findings"])
            + f". Rolled back to {replaced!r} (alias move {done['sequence']}); {judged!r} is "
            "marked rolled back, so no automatic promotion brings it back. Inspect its "
            "training run and data before reinstating it.",
            gate="next_day_regression",
            observed=f"log loss {_signed(difference['log_loss']['estimate'])}, AUC "
            f"{_signed(difference['auc']['estimate'])} (production minus replaced)",
            threshold=f"{difference['confidence']:.0%} paired-bootstrap interval beyond "
            f"max_log_loss_increase {verdict['config']['max_log_loss_increase']} / "
            f"max_auc_drop {verdict['config']['max_auc_drop']}",
            run_id=context.run.run_id,
        ),
        prefix=ALERTS_PREFIX,
    )
    return "rolled back"


@dg.asset(
    name=GUARD_ASSET,
    description="Scores the production model promoted the day before and the version it "
    "replaced on this day's unseen examples; rolls production back when it is worse beyond "
    "the day's bootstrap interval.",
    group_name="training",
    partitions_def=training_partitions,
    deps=[DATASET_ASSET],
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    kinds={"pytorch"},
    tags={"layer": "registry"},
)
def model_next_day_guard(
    context: dg.AssetExecutionContext,
    config: GuardConfig,
    storage: ObjectStorage,
    registry: ModelRegistryResource,
    notifier: Notifier,
) -> dg.MaterializeResult:
    partition = context.partition_key
    store = storage.open_store()
    models = registry.open_registry()
    verdict, decided_now = read_verdict(store, partition), False
    if verdict is None:
        try:
            fresh = compute_verdict(store, models, partition, config, context.run.run_id)
        except PartitionNotPublished as err:
            raise dg.Failure(
                f"{GUARD_ASSET} {partition}: the day's approved examples are not readable: "
                f"{err}. Re-materialize {DATASET_ASSET} for {partition}, then this asset.",
                allow_retries=False,
            ) from err
        verdict, decided_now = claim_verdict(store, fresh)
    if not decided_now:
        context.log.info(
            f"{GUARD_ASSET} {partition}: decided already by run {verdict['run_id']}; that "
            "verdict stands (no second rollback, no second alert)"
        )
    outcome = "recorded"
    if verdict["regressed"]:
        outcome = _act(context, store, models, notifier, verdict)
    elif verdict["judged"]:
        outcome = "production stays"
    return dg.MaterializeResult(
        metadata={
            **_metadata(verdict, outcome),
            "decided_by_run": verdict["run_id"],
            "decided_now": decided_now,
        }
    )
