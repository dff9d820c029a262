"""The daily loop in-process: a day's model warm-starts from the production model (the newest
earlier day whose evaluation passed), and the evaluation scores candidate and production on
the same held-out rows, next to a constant-rate baseline; a first model is judged by the
baseline rule, later ones by the production rule, an opt-in floor only when set; a candidate
that fails a blocking check does not become production, and the failing check says why in
numbers, with the partition and the next step."""

import hashlib
import json
import logging
import shutil

import dagster as dg
import pytest

from assets.model.evaluation import EvaluationConfig, decided_by, model_evaluation, verdicts
from assets.model.model_checkpoint import model_checkpoint
from assets.model.records import ProductionRef, production_model, read_evaluation
from assets.partitions import partition_range_tags
from resources.factory import build_resources
from resources.storage.object_store import LocalObjectStore
from tests.support.example import (
    example_daily_events,
    example_feature_assets,
    example_training_dataset,
)

PIPELINE = [example_daily_events, *example_feature_assets]
TRAINING = [example_training_dataset, model_checkpoint, model_evaluation]
FIRST, SECOND, THIRD = "2026-11-04", "2026-11-05", "2026-11-06"
STEPS = {
    "total_steps": 150,
    "checkpoint_every_steps": 50,
    "log_every_steps": 50,
    "init_from": "production",
}
# Learning rate 0: the candidate keeps its random initial weights.
UNTRAINED = {**STEPS, "lr": 0.0, "init_from": "none", "total_steps": 10, "warmup_steps": 0}
ALL_CHECKS = {"auc_floor", "beats_baseline", "no_regression", "no_segment_regression"}
# Only the opt-in floor can refuse: every relative rule relaxed.
FLOOR_ONLY = {
    "min_auc": 0.999,
    "baseline_margin": -1.0,
    "baseline_auc_margin": -1.0,
    "max_auc_drop": 1.0,
    "max_log_loss_increase": 1.0,
    "max_segment_auc_drop": 1.0,
}


def _day(resources, partition, evaluation=None, training=STEPS):
    result = dg.materialize(
        [*PIPELINE, *TRAINING],
        selection=[asset.key for asset in TRAINING],
        partition_key=partition,
        resources=resources,
        run_config={
            "ops": {
                "model_checkpoint": {"config": training},
                "model_evaluation": {"config": evaluation or {}},
            }
        },
        raise_on_error=False,
    )
    metadata = {
        event.asset_key.path[-1]: {k: v.value for k, v in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
    }
    checks = {
        e.check_name: e.passed for e in result.get_asset_check_evaluations()
    }  # the evaluation's blocking checks
    return result, metadata, checks


def _environment(tmp_path, seeded_sqlite, last):
    root = tmp_path / "env"
    root.mkdir()
    shutil.copyfile(seeded_sqlite, root / "warehouse.sqlite")
    resources = build_resources("local", local_root=root)
    assert dg.materialize(
        PIPELINE, resources=resources, tags=partition_range_tags("2026-10-29", last)
    ).success
    return resources, LocalObjectStore(root / "object-store")


@pytest.mark.slow  # starts trainer subprocesses
def test_the_daily_loop_warm_starts_from_production_and_compares_against_it(
    tmp_path, seeded_sqlite, caplog
):
    resources, store = _environment(tmp_path, seeded_sqlite, THIRD)

    first, meta, checks = _day(resources, FIRST)
    assert first.success
    assert meta["model_checkpoint"]["warm_start_from"]["day"] is None  # nothing to start from
    assert meta["model_evaluation"]["production_partition"] == "none"
    assert meta["model_evaluation"]["production_version"] == "none"
    assert checks == dict.fromkeys(ALL_CHECKS, True)
    verdict = read_evaluation(store, FIRST)
    assert verdict["passed"]
    # A first model: the baseline rule decided (no floor by default), on AUC and log loss.
    assert verdict["decided_by"] == meta["model_evaluation"]["decided_by"] == "baseline"
    assert verdict["checks"]["auc_floor"]["detail"].startswith("off: no min_auc set")
    assert verdict["scores"]["baseline"]["auc"] == 0.5
    assert verdict["scores"]["candidate"]["auc"] > 0.5 + EvaluationConfig().baseline_auc_margin
    # Every metric is numeric metadata, and the same numbers are in the report next to the
    # model, written under its sha256.
    evaluation_meta = meta["model_evaluation"]
    candidate = verdict["scores"]["candidate"]
    for name, value in (
        ("candidate_auc", candidate["auc"]),
        ("candidate_log_loss", candidate["log_loss"]),
        ("candidate_ece", candidate["ece"]),
        ("candidate_mean_predicted_ctr", candidate["mean_predicted_ctr"]),
        ("observed_ctr", candidate["observed_ctr"]),
        ("baseline_log_loss", verdict["scores"]["baseline"]["log_loss"]),
        ("candidate_auc_device_ios", candidate["segments"]["device"]["ios"]["auc"]),
        ("candidate_auc_country_us", candidate["segments"]["country"]["US"]["auc"]),
    ):
        assert isinstance(evaluation_meta[name], float)
        assert evaluation_meta[name] == pytest.approx(value)
    assert candidate["log_loss"] < verdict["scores"]["baseline"]["log_loss"]
    report = store.get_bytes(verdict["report_key"])
    assert verdict["report_key"].startswith(
        verdict["candidate"]["checkpoint_key"].rsplit("/", 1)[0]
    )
    assert hashlib.sha256(report).hexdigest() == verdict["report_sha256"]
    assert json.loads(report)["scores"] == verdict["scores"]

    second, meta, checks = _day(resources, SECOND)
    assert second.success
    assert meta["model_checkpoint"]["warm_start_from"]["day"] == FIRST
    evaluation = read_evaluation(store, SECOND)
    assert evaluation["decided_by"] == "production"
    scores = evaluation["scores"]
    assert scores["production"]["partition"] == FIRST
    # Nothing promoted (no registry alias): the reference is the newest passing day, and the
    # promotion's CAS would expect "still unset".
    assert evaluation["production"]["version"] is None
    assert (
        evaluation["production"]["model"]["checkpoint_key"]
        == verdict["candidate"]["checkpoint_key"]
    )
    # Both models were scored on the same held-out rows.
    assert scores["production"]["examples"] == scores["candidate"]["examples"] > 500
    assert meta["model_evaluation"]["production_auc"] == pytest.approx(scores["production"]["auc"])
    assert checks["no_regression"] == evaluation["checks"]["no_regression"]["passed"]
    assert (
        checks["no_segment_regression"] == evaluation["checks"]["no_segment_regression"]["passed"]
    )

    # A candidate that misses an opt-in floor: the blocking check fails, the floor decided,
    # one alert, and it does not become production (the next day would still start from the
    # last passing model).
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="ml_template.alerts"):
        _, meta, checks = _day(resources, THIRD, evaluation=FLOOR_ONLY)
    assert checks == {**dict.fromkeys(ALL_CHECKS, True), "auc_floor": False}
    refused = read_evaluation(store, THIRD)
    assert not refused["passed"]
    assert refused["decided_by"] == meta["model_evaluation"]["decided_by"] == "floor"
    auc = refused["scores"]["candidate"]["auc"]
    detail = refused["checks"]["auc_floor"]["detail"]
    assert detail.startswith(
        f"model_evaluation {THIRD} refused by the floor rule: auc: candidate {auc:.4f} is below "
        "the floor min_auc 0.999"
    )
    assert "Next: the floor is opt-in" in detail
    alerts = [r.getMessage() for r in caplog.records if r.name == "ml_template.alerts"]
    assert len(alerts) == 1 and f"model_evaluation partition {THIRD}" in alerts[0]
    assert "decided by the floor rule" in alerts[0]
    newest_passing = SECOND if evaluation["passed"] else FIRST
    assert production_model(store, before="2026-11-07")["partition"] == newest_passing


@pytest.mark.slow  # starts a trainer subprocess
def test_an_untrained_candidate_fails_a_blocking_check_that_names_its_numbers(
    tmp_path, seeded_sqlite, caplog
):
    resources, store = _environment(tmp_path, seeded_sqlite, FIRST)
    with caplog.at_level(logging.ERROR, logger="ml_template.alerts"):
        result, meta, checks = _day(resources, FIRST, training=UNTRAINED)
    assert checks["beats_baseline"] is False
    verdict = read_evaluation(store, FIRST)
    assert not verdict["passed"]
    assert verdict["decided_by"] == meta["model_evaluation"]["decided_by"] == "baseline"
    loss = verdict["scores"]["candidate"]["log_loss"]
    baseline = verdict["scores"]["baseline"]["log_loss"]
    assert loss > baseline
    [evaluation] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "beats_baseline"
    ]
    message = evaluation.description
    assert message == verdict["checks"]["beats_baseline"]["detail"]
    # The partition, the metric, the candidate's value, the baseline's, the threshold and the
    # next step.
    assert message.startswith(
        f"model_evaluation {FIRST} refused by the baseline rule: log_loss: candidate {loss:.4f} "
        "vs the constant-rate baseline's "
    )
    assert f"baseline's {baseline:.4f}" in message
    assert f"tolerance baseline_margin 0.0 (the candidate must be below {baseline:.4f})" in message
    assert "Next: train longer (model_checkpoint's epochs, or total_steps)" in message
    # One alert for the failed evaluation, naming every failed check.
    alerts = [r.getMessage() for r in caplog.records if r.name == "ml_template.alerts"]
    assert len(alerts) == 1 and "beats_baseline" in alerts[0] and message in alerts[0]
    assert meta["model_evaluation"]["log_loss_vs_baseline"] > 0


def _scores(auc, log_loss, segment_aucs, rows=300):
    return {
        "auc": auc,
        "log_loss": log_loss,
        "segments": {
            "device": {
                name: {"rows": rows, "positives": rows // 5, "auc": value}
                for name, value in segment_aucs.items()
            },
            "country": {"US": {"rows": 50, "positives": 9, "auc": 0.2}},
        },
    }


DAY = "2026-11-05"
BASELINE = {"ctr": 0.2, "log_loss": 0.50, "auc": 0.5, "train_rows": 1000}
NO_PRODUCTION = ProductionRef(None, None, "nothing promoted yet: baseline only")


def _judge(scores, production, config=None):
    results = verdicts(scores, production, config or EvaluationConfig(), partition=DAY)
    return results, decided_by(results, first_model=production.model is None)


def test_checks_name_metric_candidate_production_and_tolerance():
    production = ProductionRef("2026-11-04-0123456789ab", {"partition": "2026-11-04"}, "registry")
    good = {
        "candidate": _scores(0.70, 0.45, {"ios": 0.70, "web": 0.69}),
        "production": _scores(0.705, 0.455, {"ios": 0.72, "web": 0.70}),
        "baseline": BASELINE,
    }
    results, rule = _judge(good, production)
    assert all(ok for ok, _ in results.values()) and rule == "production"

    bad = {
        "candidate": _scores(0.66, 0.47, {"ios": 0.60, "web": 0.69}),
        "production": _scores(0.70, 0.45, {"ios": 0.72, "web": 0.70}),
        "baseline": BASELINE,
    }
    results, rule = _judge(bad, production)
    assert rule == "production"
    assert results["auc_floor"][0] and results["beats_baseline"][0]
    ok, detail = results["no_regression"]
    assert not ok
    assert detail.startswith(f"model_evaluation {DAY} refused by the production rule: ")
    assert (
        "auc: candidate 0.6600 vs production '2026-11-04-0123456789ab' 0.7000, tolerance "
        "max_auc_drop 0.01 (drop 0.0400)" in detail
    )
    assert (
        "log_loss: candidate 0.4700 vs production '2026-11-04-0123456789ab' 0.4500, tolerance "
        "max_log_loss_increase 0.01 (increase 0.0200)" in detail
    )
    assert "Next: production keeps serving" in detail
    ok, detail = results["no_segment_regression"]
    assert not ok
    assert (
        "auc of segment device=ios (300 rows): candidate 0.6000 vs production "
        "'2026-11-04-0123456789ab' 0.7200 (drop 0.1200), tolerance max_segment_auc_drop 0.05"
        in detail
    )
    # The country segment is too small to be judged; web is within the tolerance.
    assert "country" not in detail and "web" not in detail


def test_a_first_model_is_judged_by_the_baseline_on_auc_and_log_loss():
    # Beats the baseline on both by more than the margins: passes, the baseline decided.
    better = {"candidate": _scores(0.56, 0.49, {"ios": 0.6}), "baseline": BASELINE}
    results, rule = _judge(better, NO_PRODUCTION)
    assert all(ok for ok, _ in results.values()) and rule == "baseline"
    assert results["auc_floor"] == (True, "off: no min_auc set (an opt-in floor)")
    assert results["no_regression"][0] and results["no_segment_regression"][0]

    # Log loss above the baseline's: refused, with the partition, numbers, threshold, next step.
    worse = {"candidate": _scores(0.65, 0.52, {"ios": 0.6}), "baseline": BASELINE}
    results, rule = _judge(worse, NO_PRODUCTION)
    ok, detail = results["beats_baseline"]
    assert not ok and rule == "baseline"
    assert detail.startswith(
        f"model_evaluation {DAY} refused by the baseline rule: log_loss: candidate 0.5200 vs "
        "the constant-rate baseline's 0.5000 (it predicts the training window's positive rate "
        "0.2000 for every row), tolerance baseline_margin 0.0 (the candidate must be below "
        "0.5000). Next: train longer"
    )
    assert "auc:" not in detail  # AUC beat the baseline's by more than the margin

    # Lower log loss but an AUC within the margin of the baseline's: refused on AUC.
    flat = {"candidate": _scores(0.505, 0.49, {"ios": 0.6}), "baseline": BASELINE}
    results, rule = _judge(flat, NO_PRODUCTION)
    ok, detail = results["beats_baseline"]
    assert not ok and rule == "baseline"
    assert (
        "auc: candidate 0.5050 vs the baseline's 0.5000, tolerance baseline_auc_margin 0.01 "
        "(the candidate must be above 0.5100)" in detail
    )
    assert "log_loss" not in detail
    # The margins are configuration: a margin below zero lets the same model through.
    results, rule = _judge(flat, NO_PRODUCTION, EvaluationConfig(baseline_auc_margin=-0.01))
    assert results["beats_baseline"][0] and rule == "baseline"

    # Later days: AUC is held to production's, not the baseline's.
    production = ProductionRef("v1", {"partition": "2026-11-04"}, "registry")
    later = {**flat, "production": _scores(0.506, 0.49, {"ios": 0.6})}
    results, rule = _judge(later, production)
    assert all(ok for ok, _ in results.values()) and rule == "production"


def test_an_opt_in_floor_refuses_and_says_it_decided():
    better = {"candidate": _scores(0.65, 0.49, {"ios": 0.6}), "baseline": BASELINE}
    results, rule = _judge(better, NO_PRODUCTION, EvaluationConfig(min_auc=0.7))
    ok, detail = results["auc_floor"]
    assert not ok and rule == "floor"
    assert detail.startswith(
        f"model_evaluation {DAY} refused by the floor rule: auc: candidate 0.6500 is below the "
        "floor min_auc 0.7"
    )
    assert "Next: the floor is opt-in: if it does not fit this data, lower or unset min_auc" in (
        detail
    )
    assert results["beats_baseline"][0]
    # Refused by the baseline too: the day's own rule is named first.
    worse = {"candidate": _scores(0.65, 0.52, {"ios": 0.6}), "baseline": BASELINE}
    _, rule = _judge(worse, NO_PRODUCTION, EvaluationConfig(min_auc=0.7))
    assert rule == "baseline"
