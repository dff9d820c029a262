"""Training never runs on a day whose gates failed: not on the first delivery of bad data, not
after a good day is re-loaded with bad data, and not inside a backfill."""

import json
import shutil
import sqlite3

import dagster as dg
import pytest

from assets.model.training_dataset import manifest_inputs
from assets.partitions import partition_range_tags
from resources.factory import build_resources
from tests.support.example import (
    EXAMPLE_REQUIRED_ASSETS,
    example_daily_events,
    example_feature_assets,
    example_training_dataset,
)

# Dozens of materializations (about 40 s): `make test-fast` skips it.
pytestmark = pytest.mark.slow

PIPELINE = [example_daily_events, *example_feature_assets]
WINDOW = ("2026-10-31", "2026-11-06")
DAY = "2026-11-06"
DROP_LATE_HOURS = (
    f"DELETE FROM events WHERE event_date = '{DAY}' AND (event_time / 3600000000) % 24 >= 18"
)


@pytest.fixture
def env(tmp_path, seeded_sqlite):
    root = tmp_path / "env"
    root.mkdir()
    shutil.copyfile(seeded_sqlite, root / "warehouse.sqlite")
    return root, build_resources("local", local_root=root)


def _train(resources, partition, **tags):
    return dg.materialize(
        [*PIPELINE, example_training_dataset],
        selection=[example_training_dataset.key],
        partition_key=partition,
        resources=resources,
        tags=tags,
        raise_on_error=False,
    )


def _manifest_keys(root):
    return sorted(p.name for p in (root / "object-store").rglob("datasets/**/*.json"))


def test_a_good_window_becomes_a_versioned_training_set(env):
    root, resources = env
    assert dg.materialize(PIPELINE, resources=resources, tags=partition_range_tags(*WINDOW)).success
    result = _train(resources, DAY)
    assert result.success
    manifest_path = root / "object-store" / "datasets" / "training_dataset" / f"{DAY}.json"
    manifest = json.loads(manifest_path.read_text())
    days = ["2026-10-31"] + [f"2026-11-0{d}" for d in range(1, 7)]
    assert [i["partition"] for i in manifest_inputs(manifest)] == days
    # Every asset the model depends on is verified and recorded for every day of the window.
    assert sorted((i["asset"], i["partition"]) for i in manifest["inputs"]) == sorted(
        (asset, day) for asset in EXAMPLE_REQUIRED_ASSETS for day in days
    )
    assert set(EXAMPLE_REQUIRED_ASSETS) == {
        "daily_events",
        "user_daily_features",
        "item_daily_features",
        "training_examples",
    }
    assert all(len(i["content_sha256"]) == 64 and i["rows"] > 0 for i in manifest["inputs"])
    # The model reads every day's examples, and the user/item features only of the days
    # before DAY (each example sees the history before its own day; DAY's feed DAY+1).
    assert manifest["model_inputs"] == {
        "training_examples": days,
        "user_daily_features": days[:-1],
        "item_daily_features": days[:-1],
    }


def test_first_delivery_of_an_incomplete_day_never_reaches_training(env):
    root, resources = env
    assert dg.materialize(
        PIPELINE, resources=resources, tags=partition_range_tags(WINDOW[0], "2026-11-05")
    ).success
    with sqlite3.connect(root / "warehouse.sqlite") as db:
        db.execute(DROP_LATE_HOURS)
    daily = dg.materialize(PIPELINE, partition_key=DAY, resources=resources, raise_on_error=False)
    assert not daily.success
    result = _train(resources, DAY)
    assert not result.success
    [failure] = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    # The events snapshot is verified first: it is the blocked asset, and the message says so.
    assert f"daily_events partition {DAY} is blocked by its quality gates ['completeness']" in (
        message
    )
    assert _manifest_keys(root) == []


def test_a_good_day_reloaded_with_bad_data_blocks_training(env):
    root, resources = env
    assert dg.materialize(PIPELINE, resources=resources, tags=partition_range_tags(*WINDOW)).success
    with sqlite3.connect(root / "warehouse.sqlite") as db:
        db.execute(DROP_LATE_HOURS)
    # The operator chose to take a day offline when a re-delivery fails its gates (the default
    # keeps serving the approved version, which training may then still use).
    rerun = dg.materialize(
        PIPELINE,
        partition_key=DAY,
        resources=resources,
        run_config={"ops": {"daily_events": {"config": {"on_refused_redelivery": "take_offline"}}}},
        raise_on_error=False,
    )
    assert not rerun.success

    result = _train(resources, DAY)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert f"daily_events partition {DAY} is blocked by its quality gates ['completeness']" in (
        message
    )
    assert _manifest_keys(root) == []


def test_backfill_runs_refuse_the_blocked_day_and_train_the_good_one(env):
    root, resources = env
    with sqlite3.connect(root / "warehouse.sqlite") as db:
        db.execute(DROP_LATE_HOURS)
    # The feature backfill, in two batched runs; the batch holding the bad day fails closed.
    backfill = {"dagster/backfill": "features-backfill"}
    assert dg.materialize(
        PIPELINE,
        resources=resources,
        tags={**partition_range_tags("2026-10-30", "2026-11-05"), **backfill},
    ).success
    assert not dg.materialize(
        PIPELINE,
        resources=resources,
        tags={**partition_range_tags(DAY, DAY), **backfill},
        raise_on_error=False,
    ).success
    # The training backfill: one run per day (BackfillPolicy.multi_run(1)).
    tags = {"dagster/backfill": "training-backfill"}
    assert _train(resources, "2026-11-05", **tags).success
    blocked = _train(resources, DAY, **tags)
    assert not blocked.success
    message = blocked.get_step_failure_events()[0].step_failure_data.error.message
    assert f"daily_events partition {DAY} is blocked by its quality gates" in message
    assert _manifest_keys(root) == ["2026-11-05.json"]


def test_a_day_whose_user_features_are_blocked_is_refused(env):
    """The examples and the events of DAY pass; only user_daily_features is blocked (its volume
    gate fails on first delivery). Training must still refuse the window."""
    root, resources = env
    assert dg.materialize(
        PIPELINE, resources=resources, tags=partition_range_tags(WINDOW[0], "2026-11-05")
    ).success
    blocked = dg.materialize(
        PIPELINE,
        partition_key=DAY,
        resources=resources,
        run_config={"ops": {"user_daily_features": {"config": {"volume_min_rows": 10**9}}}},
        raise_on_error=False,
    )
    assert not blocked.success
    materialized = {e.asset_key.path[-1] for e in blocked.get_asset_materialization_events()}
    assert {"daily_events", "training_examples", "item_daily_features"} <= materialized
    assert "user_daily_features" not in materialized

    result = _train(resources, DAY)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert f"training_dataset partition {DAY} refused its input window" in message
    assert f"user_daily_features partition {DAY} is blocked by its quality gates" in message
    assert f"re-materialize user_daily_features for {DAY}" in message
    assert _manifest_keys(root) == []
