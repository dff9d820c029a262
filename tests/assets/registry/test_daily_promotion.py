"""The daily loop through Dagster with the registry: a passing candidate is registered and
promoted by CAS against exactly the production version its evaluation resolved; a worse
candidate never reaches production; when production moved between evaluation and promotion,
the promotion re-decides against the new production on the same held-out rows (one more CAS
only if the candidate still passes, a clear refusal otherwise)."""

import dataclasses
import hashlib
import json
import shutil

import dagster as dg
import pytest

from assets.model.evaluation import model_evaluation
from assets.model.model_checkpoint import model_checkpoint
from assets.model.records import read_candidate, read_evaluation
from assets.partitions import partition_range_tags
from assets.registry.promotion import model_promotion, production_model
from resources.factory import build_resources
from resources.registry.registry import PRODUCTION
from resources.registry.serving import load_alias
from resources.storage.object_store import LocalObjectStore
from tests.support.example import (
    example_daily_events,
    example_feature_assets,
    example_training_dataset,
)

# Starts trainer subprocesses.
pytestmark = pytest.mark.slow

PIPELINE = [example_daily_events, *example_feature_assets]
LOOP = [example_training_dataset, model_checkpoint, model_evaluation, model_promotion]
UP_TO_EVALUATION = [example_training_dataset, model_checkpoint, model_evaluation]
FIRST, SECOND = "2026-11-04", "2026-11-05"
STEPS = {
    "total_steps": 150,
    "checkpoint_every_steps": 50,
    "log_every_steps": 50,
    "init_from": "production",
}
# Barely trained from random weights: a model clearly worse than the first day's.
WORSE = {**STEPS, "lr": 1e-6, "init_from": "none", "total_steps": 10, "warmup_steps": 0}
# A 150-step model reaches an AUC of about 0.6; the comparison is under test, not the floor.
EVALUATION = {"min_auc": 0.55}


def _day(resources, partition, training=STEPS, selection=LOOP, evaluation=EVALUATION):
    ops = {}
    if model_checkpoint in selection:
        ops["model_checkpoint"] = {"config": training}
    if model_evaluation in selection:
        ops["model_evaluation"] = {"config": evaluation}
    result = dg.materialize(
        [*PIPELINE, *LOOP, production_model],
        selection=[asset.key for asset in selection],
        partition_key=partition,
        resources=resources,
        run_config={"ops": ops},
        raise_on_error=False,
    )
    materialized = {e.asset_key.path[-1]: e.materialization for e in
                    result.get_asset_materialization_events()}  # fmt: skip
    return result, materialized


def _failure(result) -> str:
    return " ".join(e.event_specific_data.error.message for e in result.get_step_failure_events())


def test_promotion_in_the_daily_loop(tmp_path, seeded_sqlite):
    root = tmp_path / "env"
    root.mkdir()
    shutil.copyfile(seeded_sqlite, root / "warehouse.sqlite")
    resources = build_resources("local", local_root=root)
    registry = resources["registry"].open_registry()
    store = LocalObjectStore(root / "object-store")
    assert dg.materialize(
        PIPELINE, resources=resources, tags=partition_range_tags("2026-10-29", SECOND)
    ).success

    first, materialized = _day(resources, FIRST)
    assert first.success
    promoted = registry.resolve(PRODUCTION)
    assert promoted.day == FIRST
    assert materialized["model_promotion"].metadata["promoted"].value is True
    assert materialized["production_model"].metadata["version"].value == promoted.version
    checkpoint_meta = materialized["model_checkpoint"].metadata
    assert promoted.code_version == checkpoint_meta["code_version"].value
    assert promoted.fingerprint == checkpoint_meta["fingerprint"].value
    assert promoted.torch_version == checkpoint_meta["torch_version"].value
    assert len(promoted.dataset["inputs"]) > 0
    assert promoted.evaluation["passed"] is True
    assert promoted.evaluation["production_version"] is None  # the first: against the baseline
    # The version record names the full evaluation report by key and sha256.
    report_bytes = store.get_bytes(promoted.evaluation["report_key"])
    assert hashlib.sha256(report_bytes).hexdigest() == promoted.evaluation["report_sha256"]
    report = json.loads(report_bytes)
    assert report["scores"] == read_evaluation(store, FIRST)["scores"]
    assert set(report["checks"]) == {
        "auc_floor", "beats_baseline", "no_regression", "no_segment_regression",
    }  # fmt: skip
    assert load_alias(registry, PRODUCTION).version.version == promoted.version

    # A worse candidate: its evaluation fails a blocking check, naming production's numbers,
    # promotion does not run, and production still names the first day's model.
    second, materialized = _day(resources, SECOND, training=WORSE)
    assert not second.success
    assert "model_promotion" not in materialized
    failed = {
        e.check_name: e.description for e in second.get_asset_check_evaluations() if not e.passed
    }
    assert "no_regression" in failed
    assert "auc: candidate " in failed["no_regression"]
    assert f"vs production {promoted.version!r} " in failed["no_regression"]
    assert "tolerance max_auc_drop 0.01" in failed["no_regression"]
    assert registry.resolve(PRODUCTION).version == promoted.version
    assert [m.to_version for m in registry.history(PRODUCTION)] == [promoted.version]
    # Materialized on its own, the promotion refuses the failed candidate too.
    alone, _ = _day(resources, SECOND, selection=[model_promotion])
    assert not alone.success
    assert "no_regression" in _failure(alone)
    assert registry.resolve(PRODUCTION).version == promoted.version
    weak = read_candidate(store, SECOND)

    # Production moves after the evaluation to a model the candidate does not beat: the
    # promotion re-scores it against the new production and refuses. The weak model is judged
    # against a copy of itself (so it passes, with the floor and the baseline margin relaxed),
    # then production goes back to the first day's model before the promotion runs.
    weak_copy = dataclasses.replace(
        promoted,
        version="weak-by-hand",
        checkpoint_key=weak["checkpoint_key"],
        manifest_sha256=weak["manifest_sha256"],
        config=weak["config"],
    )
    registry.register(weak_copy)
    registry.move_alias(
        PRODUCTION, weak_copy.version, expected=promoted.version, why="test", run_id="ops"
    )
    relaxed = {**EVALUATION, "min_auc": 0.0, "baseline_margin": -1.0}
    judged, _ = _day(resources, SECOND, selection=[model_evaluation], evaluation=relaxed)
    assert judged.success
    verdict = read_evaluation(store, SECOND)
    assert verdict["production"]["version"] == "weak-by-hand"
    assert verdict["production"]["model"]["checkpoint_key"] == weak["checkpoint_key"]
    registry.move_alias(
        PRODUCTION, promoted.version, expected=weak_copy.version, why="back", run_id="ops"
    )
    refused, _ = _day(resources, SECOND, selection=[model_promotion])
    assert not refused.success
    message = _failure(refused)
    assert f"production moved from 'weak-by-hand' to {promoted.version!r}" in message
    assert "the candidate fails ['no_regression', 'no_segment_regression']" in message
    assert "auc: candidate " in message and f"vs production {promoted.version!r} " in message
    assert "tolerance max_auc_drop 0.01" in message
    assert f"Refused: production stays {promoted.version!r}" in message
    assert registry.resolve(PRODUCTION).version == promoted.version
    assert [m.to_version for m in registry.history(PRODUCTION)] == [
        promoted.version, "weak-by-hand", promoted.version,
    ]  # fmt: skip

    # Retrain day 2 properly and evaluate it against production; then production moves to a
    # version the evaluation never saw (a pin of the same weights under another id): the
    # promotion re-decides against it on the same rows, passes, and swaps once more.
    evaluated, _ = _day(resources, SECOND, selection=UP_TO_EVALUATION)
    assert evaluated.success
    verdict = read_evaluation(store, SECOND)
    assert verdict["passed"]
    assert verdict["production"]["version"] == promoted.version
    assert verdict["production"]["model"]["checkpoint_key"] == promoted.checkpoint_key
    pinned = dataclasses.replace(promoted, version="pinned-by-hand")
    registry.register(pinned)
    registry.move_alias(
        PRODUCTION, pinned.version, expected=promoted.version, why="pin", run_id="ops"
    )
    third, materialized = _day(resources, SECOND, selection=[model_promotion])
    assert third.success, _failure(third)
    meta = materialized["model_promotion"].metadata
    candidate = registry.resolve(PRODUCTION)
    assert candidate.day == SECOND and candidate.version == meta["version"].value
    assert meta["evaluated_against"].value == promoted.version
    assert meta["re_decided_against"].value == "pinned-by-hand"
    assert meta["production_before"].value == "pinned-by-hand"
    # The version record holds the daily report (against the first day's model); the move's
    # reason names the re-decision's report, which is stored under its sha256.
    assert candidate.evaluation["production_version"] == promoted.version
    assert candidate.evaluation["report_sha256"] == verdict["report_sha256"]
    last = registry.history(PRODUCTION)[-1]
    assert (last.from_version, last.to_version) == ("pinned-by-hand", candidate.version)
    assert "re-decided against it" in last.why
    redecision_key = last.why.split("report ")[1].split(" sha256 ")[0]
    redecision = json.loads(store.get_bytes(redecision_key))
    assert redecision["kind"] == "re-decision" and redecision["passed"]
    assert redecision["production"]["version"] == "pinned-by-hand"
    assert redecision["input_keys"] == verdict["input_keys"]
    assert (
        redecision["scores"]["candidate"]["examples"]
        == redecision["scores"]["production"]["examples"]
        == verdict["scores"]["candidate"]["examples"]
    )
    assert registry.verify(PRODUCTION) == []
