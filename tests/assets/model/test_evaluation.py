"""The daily loop in-process: a day's model warm-starts from the production model (the newest
earlier day whose evaluation passed), and the evaluation scores candidate and production on
the same held-out rows; a candidate that fails a blocking check does not become production."""

import logging
import shutil

import dagster as dg
import pytest

from assets.features.assets import feature_assets
from assets.model.evaluation import model_evaluation
from assets.model.model_checkpoint import model_checkpoint
from assets.model.records import production_model, read_evaluation
from assets.model.training_dataset import training_dataset
from assets.partitions import partition_range_tags
from assets.sources.daily_events import daily_events
from resources.factory import build_resources
from resources.storage.object_store import LocalObjectStore

# Starts trainer subprocesses.
pytestmark = pytest.mark.slow

PIPELINE = [daily_events, *feature_assets]
TRAINING = [training_dataset, model_checkpoint, model_evaluation]
FIRST, SECOND, THIRD = "2026-11-04", "2026-11-05", "2026-11-06"
STEPS = {"total_steps": 150, "checkpoint_every_steps": 50, "log_every_steps": 50}


def _day(resources, partition, min_auc=0.6):
    result = dg.materialize(
        [*PIPELINE, *TRAINING],
        selection=[asset.key for asset in TRAINING],
        partition_key=partition,
        resources=resources,
        run_config={
            "ops": {
                "model_checkpoint": {"config": STEPS},
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


def test_the_daily_loop_warm_starts_from_production_and_compares_against_it(
    tmp_path, seeded_sqlite, caplog
):
    root = tmp_path / "env"
    root.mkdir()
    shutil.copyfile(seeded_sqlite, root / "warehouse.sqlite")
    resources = build_resources("local", local_root=root)
    store = LocalObjectStore(root / "object-store")
    assert dg.materialize(
        PIPELINE, resources=resources, tags=partition_range_tags("2026-10-29", THIRD)
    ).success

    first, meta, checks = _day(resources, FIRST)
    assert first.success
    assert meta["model_checkpoint"]["warm_start_from"] == "none (random init)"
    assert meta["model_evaluation"]["production_partition"] == "none"
    assert checks == {"auc_floor": True, "no_regression": True}
    assert read_evaluation(store, FIRST)["passed"]

    second, meta, checks = _day(resources, SECOND)
    assert second.success
    assert meta["model_checkpoint"]["warm_start_from"] == FIRST
    evaluation = read_evaluation(store, SECOND)
    scores = evaluation["scores"]
    assert scores["production"]["partition"] == FIRST
    # Both models were scored on the same held-out rows.
    assert scores["production"]["examples"] == scores["candidate"]["examples"] > 500
    assert meta["model_evaluation"]["production_auc"] == pytest.approx(scores["production"]["auc"])
    assert checks["no_regression"] == evaluation["checks"]["no_regression"]["passed"]

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
