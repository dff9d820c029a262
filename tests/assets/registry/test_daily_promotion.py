"""The daily loop through Dagster with the registry: a passing candidate is registered and
promoted by CAS; a worse candidate never reaches production; a promotion whose evaluation was
made against a version that is no longer production is refused with the conflict."""

import dataclasses
import shutil

import dagster as dg
import pytest

from assets.features.assets import feature_assets
from assets.model.evaluation import model_evaluation
from assets.model.model_checkpoint import model_checkpoint
from assets.model.training_dataset import training_dataset
from assets.partitions import partition_range_tags
from assets.registry.promotion import model_promotion, production_model
from assets.sources.daily_events import daily_events
from resources.factory import build_resources
from resources.registry.registry import PRODUCTION
from resources.registry.serving import load_alias

# Starts trainer subprocesses.
pytestmark = pytest.mark.slow

PIPELINE = [daily_events, *feature_assets]
LOOP = [training_dataset, model_checkpoint, model_evaluation, model_promotion]
FIRST, SECOND = "2026-11-04", "2026-11-05"
STEPS = {"total_steps": 150, "checkpoint_every_steps": 50, "log_every_steps": 50}
# Barely trained from random weights: a model clearly worse than the first day's.
WORSE = {**STEPS, "lr": 1e-6, "warm_start": False, "total_steps": 10, "warmup_steps": 0}


def _day(resources, partition, training=STEPS, selection=LOOP):
    result = dg.materialize(
        [*PIPELINE, *LOOP, production_model],
        selection=[asset.key for asset in selection],
        partition_key=partition,
        resources=resources,
        run_config=(
            {"ops": {"model_checkpoint": {"config": training}}}
            if model_checkpoint in selection
            else {}
        ),
        raise_on_error=False,
    )
    materialized = {e.asset_key.path[-1]: e.materialization for e in
                    result.get_asset_materialization_events()}  # fmt: skip
    return result, materialized


def test_promotion_in_the_daily_loop(tmp_path, seeded_sqlite):
    root = tmp_path / "env"
    root.mkdir()
    shutil.copyfile(seeded_sqlite, root / "warehouse.sqlite")
    resources = build_resources("local", local_root=root)
    registry = resources["registry"].open_registry()
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
    assert load_alias(registry, PRODUCTION).version.version == promoted.version

    # A worse candidate: its evaluation fails a blocking check, promotion does not run, and
    # production still names the first day's model.
    second, materialized = _day(resources, SECOND, training=WORSE)
    assert not second.success
    assert "model_promotion" not in materialized
    failed_checks = [e.check_name for e in second.get_asset_check_evaluations() if not e.passed]
    assert failed_checks
    assert registry.resolve(PRODUCTION).version == promoted.version
    assert [m.to_version for m in registry.history(PRODUCTION)] == [promoted.version]
    # Materialized on its own, the promotion refuses the failed candidate too.
    alone, _ = _day(resources, SECOND, selection=[model_promotion])
    assert not alone.success
    assert registry.resolve(PRODUCTION).version == promoted.version

    # Retrain day 2 properly, but first production moves away (a rollback to a version the
    # evaluation never saw): the promotion is refused with the conflict, production untouched.
    pinned = dataclasses.replace(registry.get_version(promoted.version), version="pinned-by-hand")
    registry.register(pinned)
    registry.move_alias(
        PRODUCTION, pinned.version, expected=promoted.version, why="pin", run_id="ops"
    )
    third, _ = _day(resources, SECOND)
    assert not third.success
    failure = " ".join(e.event_specific_data.error.message for e in third.get_step_failure_events())
    assert "re-decide against 'pinned-by-hand'" in failure
    assert registry.resolve(PRODUCTION).version == "pinned-by-hand"
    assert registry.verify(PRODUCTION) == []
