"""Training never runs on a day whose gates failed: not on the first delivery of bad data, not
on a refused re-delivery of a good day, and not inside a backfill."""

import json
import shutil
import sqlite3

import dagster as dg
import pytest

from assets.features.assets import feature_assets
from assets.model.training_dataset import training_dataset
from assets.partitions import partition_range_tags
from assets.sources.daily_events import daily_events
from resources.factory import build_resources

PIPELINE = [daily_events, *feature_assets]
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
        [*PIPELINE, training_dataset],
        selection=[training_dataset.key],
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
    assert [i["partition"] for i in manifest["inputs"]] == [f"2026-10-{d}" for d in (31,)] + [
        f"2026-11-0{d}" for d in range(1, 7)
    ]
    assert all(len(i["content_sha256"]) == 64 and i["rows"] > 0 for i in manifest["inputs"])


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
    assert f"training_examples partition {DAY} has never passed its quality gates" in message
    assert _manifest_keys(root) == []


@pytest.mark.parametrize("policy", ["keep_approved", "take_offline"])
def test_a_good_day_reloaded_with_bad_data_keeps_training_on_the_approved_version(env, policy):
    """A refused re-delivery never reaches training: by default the approved version of the day
    stays in use (the window trains on exactly the bytes it had); taken offline, it refuses."""
    root, resources = env
    assert dg.materialize(PIPELINE, resources=resources, tags=partition_range_tags(*WINDOW)).success
    assert _train(resources, DAY).success
    manifest_path = root / "object-store" / "datasets" / "training_dataset" / f"{DAY}.json"
    approved_manifest = manifest_path.read_bytes()
    with sqlite3.connect(root / "warehouse.sqlite") as db:
        db.execute(DROP_LATE_HOURS)
    config = {"ops": {"daily_events": {"config": {"on_refused_redelivery": policy}}}}
    rerun = dg.materialize(
        PIPELINE, partition_key=DAY, resources=resources, run_config=config, raise_on_error=False
    )
    assert not rerun.success

    result = _train(resources, DAY)
    if policy == "keep_approved":
        assert result.success
        assert manifest_path.read_bytes() == approved_manifest
        return
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert f"daily_events partition {DAY} is blocked by its quality gates ['completeness']" in (
        message
    )
    assert "taken offline" in message
    assert manifest_path.read_bytes() == approved_manifest


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
    assert f"training_examples partition {DAY} has never passed" in message
    assert _manifest_keys(root) == ["2026-11-05.json"]
