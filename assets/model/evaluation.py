"""The day's evaluation: the candidate model and the current production model are scored on
the same held-out examples, next to a constant-rate baseline, and blocking checks decide
whether the candidate may serve (and be the next day's starting point).

Held-out rows are the evaluation split of day D's approved window (chosen by a hash of the
event id, so no model of any day trained on them). The production model is the version the
registry's `production` alias names, read once (assets/model/records.py): the report records
that version id and its checkpoint, and `model_promotion` moves the alias only if it still
names exactly that version. Before the first promotion the reference is the newest earlier
day whose evaluation passed; with none, the candidate is a first model, judged against the
baseline alone.

Blocking checks (thresholds are run config, `EvaluationConfig`), grouped into the rules that
decide (`decided_by` in the metadata and the report):

- baseline, `beats_baseline`: log loss below the constant-rate baseline's (the training
  window's positive rate predicted for every row) by more than `baseline_margin`; for a first
  model also AUC above the baseline's (0.5) by more than `baseline_auc_margin`. This is what
  lets a new dataset's daily loop promote its first model;
- production, `no_regression`: AUC at most `max_auc_drop` below production's, log loss at most
  `max_log_loss_increase` above it; `no_segment_regression`: no value of a segment column (the
  model-input declaration's `segments`) with at least `min_segment_rows` held-out rows whose
  AUC is more than `max_segment_auc_drop` below production's on that segment;
- floor, `auc_floor`: opt-in (off unless `min_auc` is set): held-out AUC at least `min_auc`.
  An absolute bar is tuned to one dataset; the relative rules above carry over to any other.

A failing check's detail names the partition, the observed numbers, the threshold and the next
step. The full report (every metric, the checks, the thresholds, the rows scored, the deciding
rule) is written create-only next to the candidate's checkpoint under its sha256;
`evaluate_candidate` is what `model_promotion` calls again to re-decide when production moved
after the evaluation.
"""

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from assets.model.model_checkpoint import ASSET as CANDIDATE_ASSET
from assets.model.model_checkpoint import approved_reads
from assets.model.records import (
    EVALUATION_ASSET,
    ProductionRef,
    read_candidate,
    resolve_production,
    write_evaluation,
    write_report,
)
from assets.partitions import training_partitions
from assets.publishing.gate_reports import PartitionNotPublished
from resources.notifier import Alert, Notifier
from resources.registry.registry import RegistryError
from resources.registry.resource import ModelRegistryResource
from resources.storage.object_store import ObjectStore
from resources.storage.resource import ObjectStorage
from training.model_inputs import ModelInputs

ASSET = EVALUATION_ASSET
REPORT_FORMAT = "model-evaluation-report/v1"
CHECK_DESCRIPTIONS = {
    "auc_floor": "Opt-in (min_auc set): the candidate's held-out AUC reaches the floor.",
    "beats_baseline": "The candidate beats the constant-rate baseline: log loss below it by "
    "more than baseline_margin and, for a first model, AUC above it by more than "
    "baseline_auc_margin.",
    "no_regression": "The candidate is not worse than production on AUC and log loss by more "
    "than the tolerances.",
    "no_segment_regression": "No segment (a value of a declared segment column) with enough "
    "rows has an AUC worse than production's by more than the tolerance.",
}
CHECKS = tuple(CHECK_DESCRIPTIONS)
# The rule each check belongs to: what `decided_by` reports.
BASELINE, PRODUCTION, FLOOR = "baseline", "production", "floor"
CHECK_RULES = {
    "auc_floor": FLOOR,
    "beats_baseline": BASELINE,
    "no_regression": PRODUCTION,
    "no_segment_regression": PRODUCTION,
}
# What a constant prediction scores: every row tied, so AUC is one half.
BASELINE_AUC = 0.5


class EvaluationConfig(dg.Config):
    """What a candidate must show to pass."""

    min_auc: float | None = Field(
        default=None,
        description="Opt-in floor: held-out AUC every candidate must reach (the auc_floor "
        "check). Unset (the default): no floor; the baseline and production rules decide. A "
        "floor is tuned to one dataset and refuses every first model of another.",
    )
    baseline_margin: float = Field(
        default=0.0,
        description="How far below the constant-rate baseline's log loss the candidate's must be "
        "(0: strictly below).",
    )
    baseline_auc_margin: float = Field(
        default=0.01,
        description="For a first model (nothing to compare against): how far above the "
        "baseline's AUC (0.5) the candidate's must be.",
    )
    max_auc_drop: float = Field(
        default=0.01, description="How far below the production model's AUC it may fall."
    )
    max_log_loss_increase: float = Field(
        default=0.01, description="How far above the production model's log loss it may rise."
    )
    min_segment_rows: int = Field(
        default=200,
        description="Held-out rows a segment needs to be judged (smaller "
        "segments are reported, not judged: their AUC is mostly noise).",
    )
    max_segment_auc_drop: float = Field(
        default=0.05,
        description="How far below production's AUC on a judged segment the candidate's may be.",
    )
    calibration_bins: int = Field(
        default=10, description="Equal-width probability bins of the expected calibration error."
    )


def _f(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def _production_name(production: ProductionRef) -> str:
    model = production.model or {}
    return repr(production.version or model.get("version") or f"model of {model['partition']}")


def _next_step(rule: str, partition: str) -> str:
    retrain = f"re-materialize model_checkpoint and {ASSET} for {partition}"
    if rule == FLOOR:
        return (
            "the floor is opt-in: if it does not fit this data, lower or unset min_auc in "
            f"{ASSET}'s config and re-materialize {ASSET} for {partition}; otherwise improve the "
            f"model and {retrain}"
        )
    if rule == BASELINE:
        return (
            "train longer (model_checkpoint's epochs, or total_steps) or check that the model's "
            f"inputs carry signal for the label, then {retrain} (margins: baseline_margin, "
            "baseline_auc_margin)"
        )
    return (
        "production keeps serving and tomorrow's training starts from it; inspect the "
        f"candidate's training run (inputs, warm start, loss), then {retrain}"
    )


def _refused(rule: str, partition: str, facts: str) -> tuple[bool, str]:
    """A failing check's detail: the partition, the numbers and threshold, the next step."""
    return False, f"{ASSET} {partition} refused by the {rule} rule: {facts}. Next: " + _next_step(
        rule, partition
    )


def _auc_floor(candidate: dict, config: EvaluationConfig, partition: str) -> tuple[bool, str]:
    if config.min_auc is None:
        return True, "off: no min_auc set (an opt-in floor)"
    auc = candidate["auc"]
    if auc is not None and auc >= config.min_auc:
        return True, f"auc: candidate {_f(auc)} >= floor min_auc {config.min_auc}"
    return _refused(
        FLOOR,
        partition,
        f"auc: candidate {_f(auc)} is below the floor min_auc {config.min_auc} (an absolute "
        "bar: no production or baseline value enters it)",
    )


def _beats_baseline(
    candidate: dict, baseline: dict, config: EvaluationConfig, first_model: bool, partition: str
) -> tuple[bool, str]:
    """Log loss below the baseline's always; for a first model AUC above the baseline's too
    (later days hold AUC to production's instead, in no_regression)."""
    loss, base = candidate["log_loss"], baseline["log_loss"]
    facts = [
        f"log_loss: candidate {_f(loss)} vs the constant-rate baseline's {_f(base)} (it "
        f"predicts the training window's positive rate {_f(baseline['ctr'])} for every row), "
        f"tolerance baseline_margin {config.baseline_margin}"
    ]
    failures = []
    if base is None:
        facts[0] += ": no training rows, no baseline to beat"
    elif loss is None or loss >= base - config.baseline_margin:
        failures.append(
            f"{facts[0]} (the candidate must be below {base - config.baseline_margin:.4f})"
        )
    if first_model:
        auc, base_auc = candidate["auc"], baseline.get("auc", BASELINE_AUC)
        text = (
            f"auc: candidate {_f(auc)} vs the baseline's {_f(base_auc)}, tolerance "
            f"baseline_auc_margin {config.baseline_auc_margin}"
        )
        facts.append(text)
        if base_auc is not None and (auc is None or auc <= base_auc + config.baseline_auc_margin):
            failures.append(
                f"{text} (the candidate must be above {base_auc + config.baseline_auc_margin:.4f})"
            )
    if failures:
        return _refused(BASELINE, partition, "; ".join(failures))
    return True, "; ".join(facts)


def _no_regression(
    candidate: dict,
    production: dict | None,
    ref: ProductionRef,
    config: EvaluationConfig,
    partition: str,
) -> tuple[bool, str]:
    if production is None:
        return True, f"no production model ({ref.source}): nothing to regress from"
    name = _production_name(ref)
    failures, passes = [], []
    auc, prod_auc = candidate["auc"], production["auc"]
    if prod_auc is not None:
        text = (
            f"auc: candidate {_f(auc)} vs production {name} {_f(prod_auc)}, tolerance "
            f"max_auc_drop {config.max_auc_drop}"
        )
        if auc is None or auc < prod_auc - config.max_auc_drop:
            drop = "undefined" if auc is None else f"{prod_auc - auc:.4f}"
            failures.append(f"{text} (drop {drop})")
        else:
            passes.append(text)
    loss, prod_loss = candidate["log_loss"], production["log_loss"]
    if prod_loss is not None:
        text = (
            f"log_loss: candidate {_f(loss)} vs production {name} {_f(prod_loss)}, tolerance "
            f"max_log_loss_increase {config.max_log_loss_increase}"
        )
        if loss is None or loss > prod_loss + config.max_log_loss_increase:
            rise = "undefined" if loss is None else f"{loss - prod_loss:.4f}"
            failures.append(f"{text} (increase {rise})")
        else:
            passes.append(text)
    if failures:
        return _refused(PRODUCTION, partition, "; ".join(failures))
    return True, "; ".join(passes) or "no metric defined on these rows"


def _no_segment_regression(
    candidate: dict,
    production: dict | None,
    ref: ProductionRef,
    config: EvaluationConfig,
    partition: str,
) -> tuple[bool, str]:
    if production is None:
        return True, f"no production model ({ref.source}): no segment to regress from"
    name = _production_name(ref)
    judged, failures = 0, []
    # The candidate's segment columns, in the declaration's order (the scores carry them).
    for column, values in candidate["segments"].items():
        theirs = production["segments"].get(column, {})
        for value, ours in sorted(values.items()):
            prod_auc = theirs.get(value, {}).get("auc")
            if ours["rows"] < config.min_segment_rows or prod_auc is None:
                continue
            judged += 1
            auc = ours["auc"]
            if auc is None or auc < prod_auc - config.max_segment_auc_drop:
                drop = "undefined" if auc is None else f"{prod_auc - auc:.4f}"
                failures.append(
                    f"auc of segment {column}={value} ({ours['rows']} rows): candidate {_f(auc)} "
                    f"vs production {name} {_f(prod_auc)} (drop {drop}), tolerance "
                    f"max_segment_auc_drop {config.max_segment_auc_drop}"
                )
    scope = f"{judged} segments with >= min_segment_rows {config.min_segment_rows} rows judged"
    if failures:
        return _refused(PRODUCTION, partition, "; ".join(failures) + f" ({scope})")
    return True, f"{scope}, none worse than production {name} by more than " + str(
        config.max_segment_auc_drop
    )


def verdicts(
    scores: dict, production: ProductionRef, config: EvaluationConfig, *, partition: str
) -> dict[str, tuple[bool, str]]:
    """check name -> (passed, description) from the scores of candidate, production (absent:
    none, a first model) and baseline. A failing check's description names the partition, the
    metric, the candidate's value, production's (or the baseline's), the threshold and the next
    step."""
    candidate, prod, baseline = scores["candidate"], scores.get("production"), scores["baseline"]
    return {
        "auc_floor": _auc_floor(candidate, config, partition),
        "beats_baseline": _beats_baseline(candidate, baseline, config, prod is None, partition),
        "no_regression": _no_regression(candidate, prod, production, config, partition),
        "no_segment_regression": _no_segment_regression(
            candidate, prod, production, config, partition
        ),
    }


def decided_by(results: dict[str, tuple[bool, str]], first_model: bool) -> str:
    """The rule that decided: for a pass, the one the candidate was judged by (baseline for a
    first model, production after); for a refusal, that rule if it refused, else the baseline
    rule, else the floor."""
    primary = BASELINE if first_model else PRODUCTION
    refused = {CHECK_RULES[name] for name, (ok, _) in results.items() if not ok}
    if not refused:
        return primary
    return next(rule for rule in (primary, BASELINE, FLOOR) if rule in refused)


def evaluate_candidate(
    store: ObjectStore,
    candidate: dict,
    production: ProductionRef,
    *,
    input_tables: Mapping[str, str],
    model_inputs: ModelInputs,
    eval_fraction: float,
    config: EvaluationConfig,
    run_id: str,
    kind: str = "daily",
) -> dict[str, Any]:
    """Score candidate, production and baseline on the same held-out rows (the partitions of
    `input_tables`, {object key: table}, read as `model_inputs` declares) and apply the
    checks: the full report (not yet written)."""
    from training.evaluate import score_models  # torch: imported by runs, not at load time

    models = {"candidate": candidate}
    if production.model is not None:
        models["production"] = production.model
    scores = score_models(
        store,
        models,
        input_tables=input_tables,
        model_inputs=model_inputs,
        eval_fraction=eval_fraction,
        bins=config.calibration_bins,
    )
    if production.model is not None:
        scores["production"]["partition"] = production.model["partition"]
    results = verdicts(scores, production, config, partition=candidate["partition"])
    return {
        "format": REPORT_FORMAT,
        "kind": kind,
        "partition": candidate["partition"],
        "passed": all(ok for ok, _ in results.values()),
        "decided_by": decided_by(results, first_model=production.model is None),
        "candidate": candidate,
        "production": production.to_json(),
        "input_keys": sorted(input_tables),
        "input_tables": dict(sorted(input_tables.items())),
        "model_inputs": model_inputs.to_dict(),
        "eval_fraction": eval_fraction,
        "config": config.model_dump(),
        "scores": scores,
        "checks": {name: {"passed": ok, "detail": d} for name, (ok, d) in results.items()},
        "run_id": run_id,
        "evaluated_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
    }


def report_inputs(store: ObjectStore, report: dict) -> dict[str, Any]:
    """`evaluate_candidate`'s input arguments for scoring again on a report's rows: the ones it
    recorded, or (a report written before reports recorded them) the day's approved reads."""
    if "input_tables" in report:
        return {
            "input_tables": report["input_tables"],
            "model_inputs": ModelInputs.from_dict(report["model_inputs"]),
        }
    reads = approved_reads(store, report["partition"])
    return {"input_tables": reads.tables, "model_inputs": reads.model_inputs}


def failed_checks(report: dict) -> dict[str, str]:
    return {name: c["detail"] for name, c in report["checks"].items() if not c["passed"]}


def metric_value(value: float | None) -> dg.MetadataValue:
    """A float metadata value (plotted per partition); NaN where the metric is undefined."""
    valid = value is not None and math.isfinite(float(value))
    return dg.MetadataValue.float(float(value) if valid else float("nan"))


def metric_slug(value: str) -> str:
    """A segment value as part of a metadata key (lower case, underscores)."""
    return re.sub(r"[^a-z0-9]+", "_", str(value).lower()).strip("_") or "null"


def report_metadata(report: dict) -> dict[str, Any]:
    """Every metric of the report as numeric metadata (NaN where absent)."""
    scores = report["scores"]
    candidate, baseline = scores["candidate"], scores["baseline"]
    production = scores.get("production") or {}
    metadata: dict[str, Any] = {
        "baseline_ctr": metric_value(baseline["ctr"]),
        "baseline_log_loss": metric_value(baseline["log_loss"]),
        "baseline_auc": metric_value(baseline.get("auc")),
        "observed_ctr": metric_value(candidate["observed_ctr"]),
        "eval_examples": dg.MetadataValue.int(candidate["examples"]),
    }
    for who, values in (("candidate", candidate), ("production", production)):
        for metric in ("auc", "log_loss", "mean_predicted_ctr", "ece"):
            metadata[f"{who}_{metric}"] = metric_value(values.get(metric))
    auc, prod_auc = candidate["auc"], production.get("auc")
    metadata["auc_vs_production"] = metric_value(
        None if auc is None or prod_auc is None else auc - prod_auc
    )
    loss, base = candidate["log_loss"], baseline["log_loss"]
    metadata["log_loss_vs_baseline"] = metric_value(
        None if loss is None or base is None else loss - base
    )
    for column, values in candidate["segments"].items():
        for value, segment in sorted(values.items()):
            name = f"{column}_{metric_slug(value)}"
            metadata[f"candidate_auc_{name}"] = metric_value(segment["auc"])
            metadata[f"rows_{name}"] = dg.MetadataValue.int(segment["rows"])
            theirs = production.get("segments", {}).get(column, {}).get(value, {})
            metadata[f"production_auc_{name}"] = metric_value(theirs.get("auc"))
    return metadata


@dg.asset(
    name=ASSET,
    description="Scores the day's candidate against the production model and a constant-rate "
    "baseline on the same held-out examples; blocking checks decide whether it may serve (a "
    "first model: against the baseline).",
    group_name="training",
    partitions_def=training_partitions,
    deps=[CANDIDATE_ASSET],
    check_specs=[
        dg.AssetCheckSpec(name, asset=ASSET, blocking=True, description=description)
        for name, description in CHECK_DESCRIPTIONS.items()
    ],
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    kinds={"pytorch"},
    tags={"layer": "training"},
)
def model_evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    storage: ObjectStorage,
    registry: ModelRegistryResource,
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
        reads = approved_reads(store, partition)
    except PartitionNotPublished as err:
        raise dg.Failure(f"{ASSET} {partition}: {err}", allow_retries=False) from err
    try:
        production = resolve_production(registry.open_registry(), before=partition)
    except RegistryError as err:
        raise dg.Failure(
            f"{ASSET} {partition}: cannot resolve the production model: {err}",
            allow_retries=False,
        ) from err
    report = evaluate_candidate(
        store,
        candidate,
        production,
        input_tables=reads.tables,
        model_inputs=reads.model_inputs,
        eval_fraction=candidate["config"]["eval_fraction"],
        config=config,
        run_id=context.run.run_id,
    )
    key, sha256 = write_report(store, report)
    write_evaluation(store, {**report, "report_key": key, "report_sha256": sha256})
    failed = failed_checks(report)
    if failed:
        notifier.send(
            Alert(
                kind="evaluation_failed",
                asset=ASSET,
                partition=partition,
                # One alert per failed evaluation, every failed check in it with its numbers.
                summary=f"failed blocking checks {sorted(failed)} (decided by the "
                f"{report['decided_by']} rule): "
                f"{'; '.join(f'{n}: {d}' for n, d in failed.items())}. The candidate does not "
                "serve; the production model (if any) stays and tomorrow's training starts from "
                f"it. Report: {store.uri(key)}",
                run_id=context.run.run_id,
            )
        )
    scored = production.model or {}
    return dg.MaterializeResult(
        metadata={
            "passed": report["passed"],
            # Which rule decided: baseline (a first model), production, or an opt-in floor.
            "decided_by": report["decided_by"],
            **report_metadata(report),
            "production_version": production.version or "none",
            "production_partition": scored.get("partition", "none"),
            "production_checkpoint": scored.get("checkpoint_key", "none"),
            "production_source": production.source,
            "candidate_checkpoint": candidate["checkpoint_key"],
            "report": dg.MetadataValue.path(store.uri(key)),
            "report_sha256": sha256,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=name,
                passed=check["passed"],
                severity=dg.AssetCheckSeverity.ERROR,
                description=check["detail"],
                metadata={"detail": check["detail"]},
            )
            for name, check in report["checks"].items()
        ],
    )
