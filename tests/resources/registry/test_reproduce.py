"""From a model version alone: fetch the exact input partitions it trained on (by hash) and the
parent it warm-started from, re-run training to the same fingerprint, get the same weights.
The model comes from the real daily loop (train, evaluate, promote) through Dagster."""

import shutil
import subprocess
import sys

import dagster as dg
import pytest
import torch

from assets.model.evaluation import model_evaluation
from assets.model.model_checkpoint import model_checkpoint
from assets.partitions import partition_range_tags
from assets.registry.promotion import model_promotion, production_model
from resources.factory import build_resources
from resources.registry.registry import PRODUCTION
from resources.registry.reproduce import (
    NotReproducible,
    fetch,
    reproduction,
    reproduction_prefix,
)
from resources.storage.object_store import LocalObjectStore
from tests.support.environment import REPO_ROOT
from tests.support.example import (
    example_daily_events,
    example_feature_assets,
    example_training_dataset,
)
from training.checkpoint import CheckpointManager, load_step_key

# Starts trainer subprocesses.
pytestmark = pytest.mark.slow

PIPELINE = [example_daily_events, *example_feature_assets]
LOOP = [example_training_dataset, model_checkpoint, model_evaluation, model_promotion]
FIRST, SECOND = "2026-11-04", "2026-11-05"
# Small, and the second day warm-starts from the first's production model, so the record has
# a parent to fetch too.
TRAINING = {"total_steps": 60, "checkpoint_every_steps": 30, "log_every_steps": 30}
# The comparison of models is not under test here: every candidate may be promoted.
EVALUATION = {"min_auc": 0.0, "baseline_margin": -1.0, "max_auc_drop": 1.0}


def _promote(resources, partition: str, init_from: str) -> None:
    result = dg.materialize(
        [*PIPELINE, *LOOP, production_model],
        selection=[asset.key for asset in LOOP],
        partition_key=partition,
        resources=resources,
        run_config={
            "ops": {
                "model_checkpoint": {"config": {**TRAINING, "init_from": init_from}},
                "model_evaluation": {"config": EVALUATION},
            }
        },
        raise_on_error=False,
    )
    assert result.success, [e.message for e in result.get_step_failure_events()]


def test_a_version_is_reproduced_from_its_record_to_the_same_weights(tmp_path, seeded_sqlite):
    root = tmp_path / "env"
    root.mkdir()
    shutil.copyfile(seeded_sqlite, root / "warehouse.sqlite")
    resources = build_resources("local", local_root=root)
    tags = partition_range_tags("2026-10-29", SECOND)
    assert dg.materialize(PIPELINE, resources=resources, tags=tags).success
    _promote(resources, FIRST, init_from="none")
    _promote(resources, SECOND, init_from="production")
    registry = resources["registry"].open_registry()
    record = registry.resolve(PRODUCTION)
    assert record.day == SECOND and record.parent_version

    # The record alone: its parts give its fingerprint, and name a parent to start from.
    repro = reproduction(registry, record.version)
    assert repro.fingerprint == record.fingerprint
    assert repro.init_from == {
        "step_key": registry.get_version(record.parent_version).checkpoint_key,
        "manifest_sha256": registry.get_version(record.parent_version).manifest_sha256,
    }
    assert repro.inputs == record.dataset["input_data_versions"]

    # What a user runs: the CLI fetches the bytes into a scratch store and re-trains there.
    scratch = tmp_path / "repro"
    done = subprocess.run(
        [sys.executable, "-m", "resources.registry.reproduce",
         "--store-root", str(root / "object-store"), "--version", record.version,
         "--to", str(scratch), "--run"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "weights equal the registered" in done.stdout
    # The scratch store holds exactly the inputs (and the parent step), nothing else.
    inputs = sorted(str(p.relative_to(scratch)) for p in scratch.glob("features/**/*.parquet"))
    assert inputs == sorted(repro.inputs)

    # Checked here too, by hand: same fingerprint, weights torch.equal to the registered ones.
    rerun = CheckpointManager(LocalObjectStore(scratch), reproduction_prefix(repro))
    loaded = rerun.load_latest(record.fingerprint)
    assert loaded is not None and loaded.manifest["fingerprint"] == record.fingerprint
    source = LocalObjectStore(root / "object-store")
    registered = load_step_key(source, record.checkpoint_key, record.manifest_sha256)
    for name, tensor in registered.payloads["model.pt"].items():
        assert torch.equal(loaded.payloads["model.pt"][name], tensor), name

    # Bytes that are not the ones it trained on are refused, naming the object.
    key = sorted(repro.inputs)[0]
    (root / "object-store" / key).write_bytes(b"a re-delivered day")
    with pytest.raises(NotReproducible, match=rf"{key} hashes to .* these are not the bytes"):
        fetch(source, repro, LocalObjectStore(tmp_path / "again"))
