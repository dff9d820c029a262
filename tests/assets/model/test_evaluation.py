"""The daily loop in-process: a day's model warm-starts from the production model (the newest
earlier day whose evaluation passed), and the evaluation scores candidate and production on
the same held-out rows, next to a constant-CTR baseline; a candidate that fails a blocking
check does not become production, and the failing check says why in numbers."""

import hashlib
import json
import logging
import shutil

import dagster as dg
import pytest

from assets.features.assets import feature_assets
from assets.model.evaluation import EvaluationConfig, model_evaluation, verdicts
from assets.model.model_checkpoint import model_checkpoint
from assets.model.records import ProductionRef, production_model, read_evaluation
from assets.model.training_dataset import training_dataset
from assets.partitions import partition_range_tags
from assets.sources.daily_events import daily_events
from resources.factory import build_resources
from resources.storage.object_store import LocalObjectStore

PIPELINE = [daily_events, *feature_assets]
TRAINING = [training_dataset, model_checkpoint, model_evaluation]
FIRST, SECOND, THIRD = "2026-11-04", "2026-11-05", "2026-11-06"
STEPS = {
    "total_steps": 150,
    "checkpoint_every_steps": 50,
    "log_every_steps": 50,
    "init_from": "production",
}
# Learning rate 0: the candidate keeps its random initial weights.
UNTRAINED = {**STEPS, "lr": 0.0, "init_from": "none", "total_steps": 10, "warmup_steps": 0}
# 150 steps on one window reach an AUC of about 0.6: the floor here is below that, so what is
# tested is the comparison, not how good a 150-step model gets (the floor's failure is tested
# with an unreachable floor below).
MIN_AUC = 0.55
ALL_CHECKS = {"auc_floor", "beats_baseline", "no_regression", "no_segment_regression"}


def _day(resources, partition, min_auc=MIN_AUC, training=STEPS):
    result = dg.materialize(
        [*PIPELINE, *TRAINING],
        selection=[asset.key for asset in TRAINING],
        partition_key=partition,
        resources=resources,
        run_config={
            "ops": {
                "model_checkpoint": {"config": training},
                "model_evaluation": {"config": {"min_auc": min_auc}},
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

    # A candidate that misses the floor: the blocking check fails, one alert, and it does not
    # become production (the next day would still start from the last passing model).
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="ml_template.alerts"):
        _, _, checks = _day(resources, THIRD, min_auc=0.999)
    assert checks["auc_floor"] is False
    assert not read_evaluation(store, THIRD)["passed"]
    alerts = [r.getMessage() for r in caplog.records if r.name == "ml_template.alerts"]
    assert len(alerts) == 1 and f"model_evaluation partition {THIRD}" in alerts[0]
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
    loss = verdict["scores"]["candidate"]["log_loss"]
    baseline = verdict["scores"]["baseline"]["log_loss"]
    assert loss > baseline
    [evaluation] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "beats_baseline"
    ]
    message = evaluation.description
    assert message == verdict["checks"]["beats_baseline"]["detail"]
    # The metric, the candidate's value, the baseline's value and the tolerance.
    assert message.startswith(f"log_loss: candidate {loss:.4f} vs the constant-CTR baseline's ")
    assert f"baseline's {baseline:.4f}" in message
    assert "tolerance baseline_margin 0.0" in message
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


def test_checks_name_metric_candidate_production_and_tolerance():
    config = EvaluationConfig()
    production = ProductionRef("2026-11-04-0123456789ab", {"partition": "2026-11-04"}, "registry")
    baseline = {"ctr": 0.2, "log_loss": 0.50, "train_rows": 1000}
    good = {
        "candidate": _scores(0.70, 0.45, {"ios": 0.70, "web": 0.69}),
        "production": _scores(0.705, 0.455, {"ios": 0.72, "web": 0.70}),
        "baseline": baseline,
    }
    assert all(ok for ok, _ in verdicts(good, production, config).values())

    bad = {
        "candidate": _scores(0.66, 0.47, {"ios": 0.60, "web": 0.69}),
        "production": _scores(0.70, 0.45, {"ios": 0.72, "web": 0.70}),
        "baseline": baseline,
    }
    results = verdicts(bad, production, config)
    assert results["auc_floor"][0] and results["beats_baseline"][0]
    ok, detail = results["no_regression"]
    assert not ok
    assert (
        "auc: candidate 0.6600 vs production '2026-11-04-0123456789ab' 0.7000, tolerance "
        "max_auc_drop 0.01 (drop 0.0400)" in detail
    )
    assert (
        "log_loss: candidate 0.4700 vs production '2026-11-04-0123456789ab' 0.4500, tolerance "
        "max_log_loss_increase 0.01 (increase 0.0200)" in detail
    )
    ok, detail = results["no_segment_regression"]
    assert not ok
    assert (
        "auc of segment device=ios (300 rows): candidate 0.6000 vs production "
        "'2026-11-04-0123456789ab' 0.7200 (drop 0.1200), tolerance max_segment_auc_drop 0.05"
        in detail
    )
    # The country segment is too small to be judged; web is within the tolerance.
    assert "country" not in detail and "web" not in detail

    # No production yet: the regression checks pass, the baseline still judges.
    alone = {"candidate": _scores(0.65, 0.52, {"ios": 0.6}), "baseline": baseline}
    none = ProductionRef(None, None, "nothing promoted yet: baseline only")
    results = verdicts(alone, none, config)
    assert results["no_regression"][0] and results["no_segment_regression"][0]
    ok, detail = results["beats_baseline"]
    assert not ok
    assert detail.startswith(
        "log_loss: candidate 0.5200 vs the constant-CTR baseline's 0.5000 (it predicts the "
        "training window's CTR 0.2000 for every row), tolerance baseline_margin 0.0"
    )
    ok, detail = verdicts(alone, none, EvaluationConfig(min_auc=0.7))["auc_floor"]
    assert not ok and detail.startswith("auc: candidate 0.6500 is below the floor min_auc 0.7")
