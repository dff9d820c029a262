"""One whole day of the loop on the second schema, through to a promoted first model.

The assets are the machinery's own, built from the page-view source contract, its feature
tables and its model-input declaration (all under tests/adapt/); the training day runs the
project's `daily_training_job` (dataset, next-day guard, real torch in a local trainer
subprocess, evaluation, promotion). With no model yet, the baseline rule decides: the candidate
beats the constant signup rate on held-out visits and the registry's production alias names it.
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest

from assets.features.assets import build_feature_assets
from assets.guard.asset import model_next_day_guard
from assets.jobs import daily_training_job
from assets.model.evaluation import model_evaluation
from assets.model.model_checkpoint import model_checkpoint
from assets.model.records import read_candidate, read_evaluation, read_report
from assets.model.training_dataset import build_training_dataset, manifest_key
from assets.partitions import TRAINING_WINDOW_DAYS, partition_range_tags
from assets.registry.promotion import registry_assets
from assets.sources.daily_events import build_daily_events
from resources.factory import build_resources
from resources.registry.registry import PRODUCTION
from resources.warehouse.backends import SqliteBackend
from scripts.run_day import MATERIALIZED, outcomes
from tests.adapt.page_view_features import PAGE_VIEW_INPUTS, PAGE_VIEW_TABLES
from tests.adapt.page_views import PAGE_VIEWS, seed_page_views

# Starts a trainer subprocess (torch), about half a minute on a laptop.
pytestmark = pytest.mark.slow

DAY = dt.date(2026, 11, 4)
FIRST_DAY = DAY - dt.timedelta(days=TRAINING_WINDOW_DAYS - 1)
# Small but real: the length follows the data (a few passes over the window's visits).
TRAINING = {
    "epochs": 4,
    "batch_size": 128,
    "history_features": True,
    "checkpoint_every_steps": 1000,
    "log_every_steps": 50,
}
LOOP_ORDER = [
    "training_dataset",
    "model_next_day_guard",
    "model_checkpoint",
    "model_evaluation",
    "model_promotion",
]


def test_one_day_of_the_loop_on_the_second_schema_promotes_a_first_model(tmp_path):
    seed_page_views(SqliteBackend(str(tmp_path / "warehouse.sqlite"), PAGE_VIEWS), FIRST_DAY, DAY)
    resources = build_resources("local", local_root=tmp_path)
    source = build_daily_events(PAGE_VIEWS)
    features = build_feature_assets(PAGE_VIEW_TABLES)
    dataset = build_training_dataset(PAGE_VIEW_INPUTS, PAGE_VIEW_TABLES)
    definitions = dg.Definitions(
        assets=[
            source,
            *features,
            dataset,
            model_next_day_guard,
            model_checkpoint,
            model_evaluation,
            *registry_assets,
        ],
        jobs=[daily_training_job],
        resources=resources,
    )

    window = partition_range_tags(FIRST_DAY.isoformat(), DAY.isoformat())
    built = dg.materialize([source, *features], resources=resources, tags=window)
    assert built.success
    assert {o.asset for o in outcomes(built)} == {
        "daily_events",
        *(t.name for t in PAGE_VIEW_TABLES),
    }

    partition = DAY.isoformat()
    result = definitions.resolve_job_def(daily_training_job.name).execute_in_process(
        partition_key=partition,
        run_config={"ops": {"model_checkpoint": {"config": TRAINING}}},
        raise_on_error=False,
    )
    lines = {o.asset: o for o in outcomes(result)}
    assert list(lines) == LOOP_ORDER
    assert all(o.outcome == MATERIALIZED for o in lines.values()), [
        o.line() for o in lines.values()
    ]
    assert "decided_by=baseline" in lines["model_evaluation"].detail
    assert "promoted=True" in lines["model_promotion"].detail

    store = resources["storage"].open_store()
    # The manifest carries the second schema's declaration: its tables, by role.
    manifest = json.loads(store.get_bytes(manifest_key(partition)))
    assert manifest["model_input_declaration"] == PAGE_VIEW_INPUTS.to_dict()
    assert manifest["model_inputs"]["visit_outcomes"] == window_days()
    assert manifest["model_inputs"]["visitor_days"] == window_days()[:-1]  # days before D

    candidate = read_candidate(store, partition)
    assert candidate["config"]["model_inputs"] == PAGE_VIEW_INPUTS.to_dict()
    assert candidate["config"]["epochs"] == TRAINING["epochs"]

    # A first model: the baseline rule decided, on AUC and log loss against the constant rate.
    verdict = read_evaluation(store, partition)
    assert verdict["passed"] and verdict["decided_by"] == "baseline", verdict
    report = read_report(store, verdict["report_key"], verdict["report_sha256"])
    scores = report["scores"]
    assert scores["candidate"]["log_loss"] < scores["baseline"]["log_loss"]
    assert scores["candidate"]["auc"] > scores["baseline"]["auc"] + 0.01
    assert list(scores["candidate"]["segments"]) == list(PAGE_VIEW_INPUTS.segments)
    assert report["checks"]["beats_baseline"]["passed"]

    production = resources["registry"].open_registry().resolve(PRODUCTION)
    assert production.day == partition
    assert production.evaluation["decided_by"] == "baseline"
    assert production.config["model_inputs"] == PAGE_VIEW_INPUTS.to_dict()


def window_days() -> list[str]:
    return [(FIRST_DAY + dt.timedelta(days=n)).isoformat() for n in range(TRAINING_WINDOW_DAYS)]
