"""The training asset on a drifted environment: refused with the diff (no retry, no trainer
started) unless the run config allows it, which then trains and records the drift on the model;
every model records its environment hash. The installed set is faked through
`importlib.metadata` (tests/support/distributions.py); everything else is real."""

import shutil

import dagster as dg
import pytest

from assets.model.model_checkpoint import model_checkpoint
from assets.partitions import partition_range_tags
from resources.environment import LOCK_PATH, check_environment, locked_pins
from resources.factory import build_resources
from tests.support.distributions import fake_installed
from tests.support.example import (
    example_daily_events,
    example_feature_assets,
    example_training_dataset,
)

# Trains through a trainer subprocess.
pytestmark = pytest.mark.slow

DAY = "2026-11-06"
ASSETS = [example_daily_events, *example_feature_assets, example_training_dataset, model_checkpoint]
TRAINING = {"total_steps": 20, "checkpoint_every_steps": 10, "log_every_steps": 10}
LOCKED_PYARROW = locked_pins(LOCK_PATH.read_text())["pyarrow"]


@pytest.fixture(scope="module")
def approved(tmp_path_factory, seeded_sqlite):
    root = tmp_path_factory.mktemp("gate")
    shutil.copyfile(seeded_sqlite, root / "warehouse.sqlite")
    resources = build_resources("local", local_root=root)
    tags = partition_range_tags("2026-10-31", DAY)
    assert dg.materialize(
        [example_daily_events, *example_feature_assets], resources=resources, tags=tags
    ).success
    assert dg.materialize(
        ASSETS, selection=[example_training_dataset.key], partition_key=DAY, resources=resources
    ).success
    return root


def _train(root, tmp_path, **config):
    env = tmp_path / "env"
    shutil.copytree(root, env)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        ASSETS,
        selection=[model_checkpoint.key],
        partition_key=DAY,
        resources=build_resources("local", local_root=env),
        instance=instance,
        run_config={"ops": {"model_checkpoint": {"config": {**TRAINING, **config}}}},
        raise_on_error=False,
    )
    return result, instance, env


def _environment(result) -> tuple[str, dict]:
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    return metadata["environment_sha256"].value, metadata["environment"].value


def test_a_drifted_environment_refuses_training_with_the_diff(approved, tmp_path, monkeypatch):
    fake_installed(monkeypatch, changed={"pyarrow": "99.0.0"})
    result, instance, env = _train(approved, tmp_path)
    assert not result.success
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.user_failure_data
    assert f"| pyarrow | {LOCKED_PYARROW} | 99.0.0 |" in error.description
    assert "allow_environment_drift" in error.description
    assert f"model_checkpoint {DAY}" in error.description
    assert "| package | locked | installed |" in error.metadata["environment_drift"].value
    # Refused before anything ran: no retry, no trainer, no checkpoint.
    retries = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert retries == []
    assert not (env / "object-store" / "checkpoints").exists()


def test_allowing_the_drift_trains_and_records_it_on_the_model(approved, tmp_path, monkeypatch):
    fake_installed(monkeypatch, changed={"pyarrow": "99.0.0"})
    drifted = check_environment()
    result, _, _ = _train(approved, tmp_path, allow_environment_drift=True)
    assert result.success, [e.message for e in result.get_step_failure_events()]
    sha256, environment = _environment(result)
    assert sha256 == drifted.environment_sha256
    assert environment["allow_environment_drift"] is True
    assert environment["matches_lock"] is False
    assert environment["drift"] == [
        {"package": "pyarrow", "locked": LOCKED_PYARROW, "installed": "99.0.0"}
    ]


def test_a_locked_environment_trains_and_records_its_hash(approved, tmp_path):
    result, _, _ = _train(approved, tmp_path)
    assert result.success, [e.message for e in result.get_step_failure_events()]
    sha256, environment = _environment(result)
    clean = check_environment()
    assert sha256 == clean.environment_sha256 and environment["matches_lock"] is True
    assert environment["drift"] == [] and environment["lock_sha256"] == clean.lock_sha256
