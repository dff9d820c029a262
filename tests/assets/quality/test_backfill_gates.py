"""Through the real daemon and webserver: a training backfill launched with the UI's GraphQL
mutation trains the good day and refuses the day whose gates failed."""

import shutil

import dagster as dg
import pytest

from assets.features.assets import feature_assets
from assets.partitions import partition_range_tags
from assets.sources.daily_events import daily_events
from resources.factory import build_resources
from scripts.dagster_processes import DagsterProcesses, embedded_home
from tests.support.warehouse_edits import drop_hours_from

# Starts real processes (trainer, daemon/webserver, make): `make test-fast` skips it.
# Runs the project's definitions on the example's seeded data (fails saying so otherwise).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("example_project")]

PIPELINE = [daily_events, *feature_assets]
GOOD, BAD = "2026-11-05", "2026-11-06"


def test_ui_launched_training_backfill_never_trains_on_a_blocked_day(tmp_path, seeded_sqlite):
    root = tmp_path / "local"
    root.mkdir()
    shutil.copyfile(seeded_sqlite, root / "warehouse.sqlite")
    resources = build_resources("local", local_root=root)
    history = partition_range_tags("2026-10-30", GOOD)
    assert dg.materialize(PIPELINE, resources=resources, tags=history).success
    assert drop_hours_from(root / "warehouse.sqlite", BAD, 18)
    blocked = dg.materialize(PIPELINE, partition_key=BAD, resources=resources, raise_on_error=False)
    assert not blocked.success

    home = embedded_home(tmp_path / "dagster_home")
    env = {"LOCAL_DATA_DIR": str(root), "DAGSTER_DEPLOYMENT": "local"}
    with DagsterProcesses(home, env, log_dir=tmp_path) as dagster:
        backfill_id = dagster.launch_asset_backfill(["training_dataset"], [GOOD, BAD])
        status = dagster.wait_for_backfill(backfill_id, timeout=300)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        # Runs of a backfill policy carry their partition as a (one-day) range.
        outcome = {
            run.tags.get(
                "dagster/partition", run.tags.get("dagster/asset_partition_range_start")
            ): (run.status)
            for run in runs
        }
    assert outcome == {GOOD: dg.DagsterRunStatus.SUCCESS, BAD: dg.DagsterRunStatus.FAILURE}
    # An asset backfill with a failed partition ends COMPLETED_FAILED: the good day done, the
    # blocked day failed, nothing left running.
    assert status == "COMPLETED_FAILED"
    manifests = sorted(p.name for p in (root / "object-store" / "datasets").rglob("*.json"))
    assert manifests == [f"{GOOD}.json"]
