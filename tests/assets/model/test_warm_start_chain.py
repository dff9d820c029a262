"""`init_from: previous_day` through the real asset: day D starts from D-1's verified
checkpoint, a rerun of D is reproducible bit for bit, a changed D-1 model gives D a new
fingerprint; the lineage entry holds the inputs, the parent, code version and config; the
history features of D itself never reach D's model; training backfills run in day order."""

import hashlib
import json
import shutil

import dagster as dg
import pytest
import torch

from assets.model.model_checkpoint import (
    ModelTrainingConfig,
    approved_inputs,
    model_checkpoint,
    plan_training_run,
)
from assets.model.records import read_candidate
from assets.partitions import partition_range_tags
from resources.factory import build_resources
from resources.storage.object_store import LocalObjectStore
from sensors.schedules import DAILY_RUN_TAGS
from sensors.training_trigger import training_request
from tests.support.example import (
    example_daily_events,
    example_feature_assets,
    example_training_dataset,
)
from training.checkpoint import load_step_key
from training.loop import MODEL_FILE

# Starts trainer subprocesses.
pytestmark = pytest.mark.slow

PREVIOUS, DAY = "2026-11-05", "2026-11-06"
ALL_ASSETS = [
    example_daily_events,
    *example_feature_assets,
    example_training_dataset,
    model_checkpoint,
]
TINY = {
    "total_steps": 60,
    "batch_size": 128,
    "warmup_steps": 5,
    "checkpoint_every_steps": 30,
    "log_every_steps": 30,
}


@pytest.fixture(scope="module")
def approved(tmp_path_factory, seeded_sqlite):
    """Features for both days' windows and both training sets, all gates passed."""
    root = tmp_path_factory.mktemp("chain")
    shutil.copyfile(seeded_sqlite, root / "warehouse.sqlite")
    resources = build_resources("local", local_root=root)
    features = [example_daily_events, *example_feature_assets]
    tags = partition_range_tags("2026-10-30", DAY)
    assert dg.materialize(features, resources=resources, tags=tags).success
    for day in (PREVIOUS, DAY):
        assert dg.materialize(
            ALL_ASSETS,
            selection=[example_training_dataset.key],
            partition_key=day,
            resources=resources,
        ).success
    return root


@pytest.fixture
def env(approved, tmp_path):
    root = tmp_path / "env"
    shutil.copytree(approved, root)
    return root, build_resources("local", local_root=root), LocalObjectStore(root / "object-store")


def _train(resources, day, instance=None, **config):
    result = dg.materialize(
        ALL_ASSETS,
        selection=[model_checkpoint.key],
        partition_key=day,
        resources=resources,
        instance=instance,
        run_config={"ops": {"model_checkpoint": {"config": {**TINY, **config}}}},
        raise_on_error=False,
    )
    assert result.success, [e.step_failure_data.error.message for e in
                            result.get_step_failure_events()]  # fmt: skip
    [event] = result.get_asset_materialization_events()
    return result, {k: v.value for k, v in event.materialization.metadata.items()}


def _weights(store, record) -> dict:
    loaded = load_step_key(store, record["checkpoint_key"], record["manifest_sha256"])
    return loaded.payloads[MODEL_FILE]


def test_previous_day_chain_is_recorded_reproducible_and_follows_its_parent(env):
    root, resources, store = env
    instance = dg.DagsterInstance.ephemeral()
    # D-1 has no D-2 model: a cold start, said in the logs and recorded.
    first, first_meta = _train(resources, PREVIOUS, instance, init_from="previous_day")
    assert first_meta["warm_start_from"]["day"] is None
    assert "no model of D-1 (2026-11-04)" in first_meta["warm_start_from"]["cold_start"]
    warnings = [
        e.user_message
        for e in instance.all_logs(first.run_id)
        if e.level == 30 and "cold start" in (e.user_message or "")
    ]
    assert warnings, "a cold start of a requested warm start must be a warning in the logs"
    previous = read_candidate(store, PREVIOUS)

    # D starts from D-1's checkpoint: its key and manifest sha256 are the parent everywhere.
    _, meta = _train(resources, DAY, init_from="previous_day")
    record = read_candidate(store, DAY)
    parent = {
        "day": PREVIOUS,
        "checkpoint_key": previous["checkpoint_key"],
        "manifest_sha256": previous["manifest_sha256"],
        "fingerprint": previous["fingerprint"],
    }
    assert record["parent"] == parent and record["warm_start_from"] == PREVIOUS
    assert record["init_from"] == "previous_day"
    assert meta["warm_start_from"] == {"init_from": "previous_day", **parent}
    lineage = meta["lineage"]
    assert lineage["parent"] == parent and lineage["fingerprint"] == meta["fingerprint"]
    assert lineage["code_version"] == meta["code_version"]
    assert lineage["config"]["history_features"] is True
    assert lineage["config"]["total_steps"] == TINY["total_steps"]
    assert set(lineage["inputs"]) == {
        "daily_events",
        "training_examples",
        "user_daily_features",
        "item_daily_features",
    }
    assert all(len(days) == 7 for days in lineage["inputs"].values())
    assert len(lineage["inputs"]["daily_events"]["2026-10-31"]) == 64
    assert lineage["training_dataset"]["manifest_key"] == f"datasets/training_dataset/{DAY}.json"
    # The model reads the examples of the window and the history of the days before D.
    assert lineage["model_reads"]["training_examples"][-1] == DAY
    assert lineage["model_reads"]["user_daily_features"] == [
        "2026-10-31", "2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", PREVIOUS
    ]  # fmt: skip
    weights = _weights(store, record)

    # Rerun D after deleting its checkpoints: same fingerprint, bit-identical weights.
    shutil.rmtree(root / "object-store" / "checkpoints" / "model_checkpoint" / DAY)
    _, again = _train(resources, DAY, init_from="previous_day")
    assert again["fingerprint"] == meta["fingerprint"]
    assert again["training_run"]["resumed_from_step"] == 0
    rerun = _weights(store, read_candidate(store, DAY))
    assert all(torch.equal(weights[name], rerun[name]) for name in weights)

    # Another D-1 model (retrained with another seed): D gets a new fingerprint and parent.
    _, retrained = _train(resources, PREVIOUS, init_from="previous_day", seed=1)
    assert retrained["fingerprint"] != first_meta["fingerprint"]
    _, changed = _train(resources, DAY, init_from="previous_day")
    assert changed["fingerprint"] != meta["fingerprint"]
    assert changed["warm_start_from"]["checkpoint_key"] == retrained["checkpoint_key"]

    # init_from none ignores D-1 entirely (the default).
    cold = plan_training_run(resources["storage"], DAY, ModelTrainingConfig(**TINY))
    assert cold.parent is None and cold.warm_start.mode == "none"
    assert cold.fingerprint not in {meta["fingerprint"], changed["fingerprint"]}


def test_a_parent_that_does_not_verify_means_a_cold_start(env):
    _, resources, store = env
    _train(resources, PREVIOUS)
    record = read_candidate(store, PREVIOUS)
    manifest_key = f"{record['checkpoint_key']}/manifest.json"
    manifest = json.loads(store.get_bytes(manifest_key))
    manifest["tampered"] = True
    store.put_bytes(manifest_key, json.dumps(manifest).encode())
    assert hashlib.sha256(store.get_bytes(manifest_key)).hexdigest() != record["manifest_sha256"]
    run = plan_training_run(
        resources["storage"], DAY, ModelTrainingConfig(**TINY, init_from="previous_day")
    )
    assert run.parent is None and run.warm_start.cold
    assert "cannot be used: its checkpoint does not verify" in run.warm_start.note
    # A parent of another shape is a cold start too, not a failed run.
    wider = plan_training_run(
        resources["storage"],
        DAY,
        ModelTrainingConfig(**TINY, init_from="previous_day", embedding_dim=6),
    )
    assert wider.parent is None and "other embedding" in wider.warm_start.note


def test_days_own_features_are_verified_but_never_read_by_its_model(env):
    _, _, store = env
    keys = approved_inputs(store, DAY)
    manifest = json.loads(store.get_bytes(f"datasets/training_dataset/{DAY}.json"))
    entries = {(e["asset"], e["partition"]): e["object_key"] for e in manifest["inputs"]}
    for asset in ("user_daily_features", "item_daily_features"):
        assert entries[(asset, DAY)] not in keys  # verified (a gate), never an input
        assert entries[(asset, PREVIOUS)] in keys
        assert max(manifest["model_inputs"][asset]) == PREVIOUS
    assert entries[("training_examples", DAY)] in keys
    assert len(keys) == 7 + 6 + 6


def test_training_backfills_run_in_day_order_and_the_daily_run_warm_starts():
    # model_checkpoint D depends on model_checkpoint D-1: the backfill daemon then launches a
    # self-dependent asset's partitions oldest first (BackfillPolicy.multi_run(1)).
    from definitions import build_definitions

    graph = build_definitions().resolve_asset_graph()  # the real code location loads with it
    node = graph.get(model_checkpoint.key)
    assert node.has_self_dependency and node.backfill_policy.max_partitions_per_run == 1
    mapping = model_checkpoint.get_partition_mapping(model_checkpoint.key)
    assert isinstance(mapping, dg.TimeWindowPartitionMapping)
    assert (mapping.start_offset, mapping.end_offset) == (-1, -1)
    # The daily sensor's runs start from the production model (the asset's default is none).
    request = training_request(
        dg.DagsterRun(
            job_name="daily_features_job",
            run_id="run-1",
            tags={**DAILY_RUN_TAGS, "dagster/partition": DAY},
        ),
        DAY,
    )
    assert request.run_config["ops"]["model_checkpoint"]["config"] == {"init_from": "production"}
    assert ModelTrainingConfig().init_from == "none"
