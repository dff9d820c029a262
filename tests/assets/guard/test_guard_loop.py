"""The next-day guard in the daily loop, in-process with real training: a first model is only
recorded; a good promotion stays; a damaged candidate that passed its own (relaxed) evaluation
is rolled back the next day, marked and alerted once, and a re-run does neither again; a
newer promotion made after the judgement is never overwritten (tests/support/guard.py says
what the damaged candidate is)."""

import dataclasses
import datetime as dt
import logging

import dagster as dg
import pytest

from assets.guard.asset import compute_verdict, model_next_day_guard
from assets.guard.decision import GuardConfig
from assets.guard.records import ALERTS_PREFIX, claim_verdict, read_verdict
from assets.model.model_checkpoint import model_checkpoint
from assets.partitions import partition_range_tags
from assets.slo.alerts import marker_key
from resources.factory import build_resources
from resources.registry.registry import PRODUCTION
from resources.storage.object_store import LocalObjectStore
from scripts.synthetic_events import seed_warehouse
from tests.support.example import example_sqlite, example_training_dataset
from tests.support.guard import DAMAGED, GOOD, LAX, PIPELINE, materialize
from tests.support.guard import train_and_promote as _train

pytestmark = pytest.mark.slow  # trains real models in trainer subprocesses

FIRST_DAY, LAST_DAY = dt.date(2026, 10, 29), dt.date(2026, 11, 8)


def _guard(resources, partition):
    """The guard run for `partition` (its approved window first) and its metadata."""
    assert materialize(resources, partition, [example_training_dataset]).success
    result = materialize(resources, partition, [model_next_day_guard])
    assert result.success, partition
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == GUARD_KEY
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


GUARD_KEY = model_next_day_guard.key.path[-1]


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard-loop")
    seed_warehouse(example_sqlite(str(root / "warehouse.sqlite")), FIRST_DAY, LAST_DAY)
    resources = build_resources("local", local_root=root)
    tags = partition_range_tags(FIRST_DAY.isoformat(), LAST_DAY.isoformat())
    assert dg.materialize(PIPELINE, resources=resources, tags=tags).success
    return resources, LocalObjectStore(root / "object-store")


def test_guard_keeps_good_promotions_and_rolls_back_a_bad_one(loop, caplog):
    resources, store = loop
    registry = resources["registry"].open_registry()

    # 11-04's model is the first: the guard of 11-05 only records it.
    first = _train(resources, "2026-11-04", GOOD)
    recorded = _guard(resources, "2026-11-05")
    assert recorded["judged"] is False and recorded["outcome"] == "recorded"
    assert "first model, with no predecessor" in recorded["why"]
    assert recorded["production_version"] == first.version
    assert recorded["rows"] > 1000 and recorded["production_auc"] > 0.55

    # 11-05's good model replaces it; on 11-06's rows it is not worse: production stays.
    good = _train(resources, "2026-11-05", GOOD)
    assert registry.history(PRODUCTION)[-1].from_version == first.version
    kept = _guard(resources, "2026-11-06")
    assert kept["judged"] is True and kept["regressed"] is False
    assert kept["outcome"] == "production stays"
    assert (kept["production_version"], kept["replaced_version"]) == (good.version, first.version)
    assert kept["log_loss_difference_lower"] <= kept["log_loss_difference"]
    assert registry.resolve(PRODUCTION).version == good.version
    assert not store.exists(marker_key("2026-11-06", "next_day_regression", ALERTS_PREFIX))

    # 11-06's damaged candidate passes its relaxed evaluation and is promoted over it ...
    bad = _train(resources, "2026-11-06", DAMAGED, LAX)
    assert registry.history(PRODUCTION)[-1].from_version == good.version
    # ... and 11-07's rows roll it back to the version it replaced, with one alert.
    with caplog.at_level(logging.ERROR, logger="ml_template.alerts"):
        rolled = _guard(resources, "2026-11-07")
        again = _guard(resources, "2026-11-07")
    assert rolled["regressed"] is True and rolled["outcome"] == "rolled back"
    assert rolled["decided_now"] is True and again["decided_now"] is False
    assert rolled["log_loss_difference_lower"] > 0.002
    assert registry.resolve(PRODUCTION).version == good.version
    moves = registry.history(PRODUCTION)
    assert [(m.from_version, m.to_version) for m in moves[-2:]] == [
        (good.version, bad.version),
        (bad.version, good.version),
    ]  # the re-run moved nothing
    assert "is worse than" in moves[-1].why and "interval" in moves[-1].why
    assert bad.version in registry.read_alias(PRODUCTION).rolled_back
    assert moves[-1].kind == "rollback"
    alerts = [r.getMessage() for r in caplog.records if "next_day_regression" in r.getMessage()]
    assert len(alerts) == 1
    for named in (bad.version, good.version, "log_loss", "99% interval", "max_log_loss_increase"):
        assert named in alerts[0]


def test_a_newer_promotion_after_the_judgement_is_never_overwritten(loop, caplog):
    resources, store = loop
    registry = resources["registry"].open_registry()
    before = registry.resolve(PRODUCTION)
    # 11-07's damaged candidate is promoted; the guard of 11-08 judges it and claims its verdict
    # (a run that decided and had not acted yet) ...
    bad = _train(resources, "2026-11-07", DAMAGED, LAX)
    assert materialize(resources, "2026-11-08", [example_training_dataset]).success
    verdict = compute_verdict(store, registry, "2026-11-08", GuardConfig(), "run-deciding")
    assert verdict["regressed"] is True
    claim_verdict(store, verdict)
    # ... then a newer version is promoted over it before the guard acts.
    newer = dataclasses.replace(before, version="newer-by-hand", day="2026-11-08")
    registry.register(newer)
    registry.move_alias(
        PRODUCTION, newer.version, expected=bad.version, why="newer promotion", run_id="ops"
    )
    sequence = registry.read_alias(PRODUCTION).move.sequence
    with caplog.at_level(logging.ERROR, logger="ml_template.alerts"):
        acted = _guard(resources, "2026-11-08")
    assert acted["regressed"] is True and acted["rolled_back"] is False
    assert acted["outcome"] == "not rolled back: production moved to newer-by-hand"
    assert registry.read_alias(PRODUCTION).move.sequence == sequence
    assert registry.resolve(PRODUCTION).version == newer.version
    assert read_verdict(store, "2026-11-08")["run_id"] == "run-deciding"
    assert not [r for r in caplog.records if "next_day_regression" in r.getMessage()]


def test_the_daily_training_job_runs_the_guard_before_training():
    from definitions import build_definitions

    graph = build_definitions("local").resolve_asset_graph()
    guard = model_next_day_guard.key
    assert guard in graph.get(model_checkpoint.key).parent_keys
    assert graph.get(guard).parent_keys == {example_training_dataset.key}
