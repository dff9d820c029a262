"""The verified training set of one day: which partitions a model trains on, with the content
hash of each (what audits need to reproduce a model).

It stands between the quality gates and the trainer. For every day of the window, the events
snapshot and every feature table must have passed their gates and still hold the approved
bytes. A window containing
a day where any of them is blocked, missing or changed is refused with the asset, the day and
the next step, and nothing is written.

What the model reads is the model-input declaration's (contract/model_inputs.py), which the
manifest carries (`model_input_declaration`: the tables by role, join keys, inputs, segments)
so the trainer, the evaluation and the guard read the same one: the examples table of every day
of the window, and each history table of the window's days before D: an example of day d sees
only the history of days before d (training/data.py joins it point-in-time), so D's own
history rows, verified above like every day's, are never read by D's model (they feed D+1's).

`training_dataset` is the asset for the project's declarations (FEATURE_TABLES, MODEL_INPUTS);
`build_training_dataset(inputs, feature_tables)` builds it for any other.
"""

import json
from collections.abc import Sequence

import dagster as dg

from assets.features.logic import FEATURE_TABLES, FeatureTable
from assets.partitions import (
    TRAINING_WINDOW,
    TRAINING_WINDOW_DAYS,
    daily_partitions,
    training_partitions,
    training_window,
)
from assets.publishing.gate_reports import (
    PartitionNotPublished,
    read_published,
    read_published_with_lineage,
)
from assets.publishing.keys import partition_object_key
from assets.sources.daily_events import ASSET as EVENTS_ASSET
from contract.model_inputs import MODEL_INPUTS
from resources.storage.object_store import ObjectStore
from resources.storage.resource import ObjectStorage
from training.model_inputs import ModelInputs

ASSET = "training_dataset"
# Every asset a day of the window must have approved, in the order they are verified: the
# source snapshot first, then each feature table with its lineage back to that snapshot.
FEATURE_ASSETS = tuple(table.name for table in FEATURE_TABLES)
REQUIRED_ASSETS = (EVENTS_ASSET, *FEATURE_ASSETS)


def required_assets(feature_tables: Sequence[FeatureTable]) -> tuple[str, ...]:
    """The assets every day of the window must have approved, in verification order."""
    return (EVENTS_ASSET, *(table.name for table in feature_tables))


def unpublished_tables(model_inputs: ModelInputs, feature_tables: Sequence[FeatureTable]):
    """The declared tables no feature asset publishes: the model can only read what the window
    verifies, so such a declaration is refused when the definitions load."""
    published = {table.name for table in feature_tables}
    return [table for table in model_inputs.tables if table not in published]


def manifest_key(partition: str) -> str:
    """Where the day's training-set manifest lives (`datasets/training_dataset/<D>.json`)."""
    return partition_object_key(
        ASSET, partition, training_partitions, layer="datasets", suffix="json"
    )


def verify_day(
    store: ObjectStore, day: str, required: Sequence[str] = REQUIRED_ASSETS
) -> list[dict]:
    """One manifest entry per required asset of `day`, each verified now (approved, intact,
    computed from the approved snapshot). Raises PartitionNotPublished naming the asset."""
    entries = []
    for asset in required:
        read = read_published if asset == EVENTS_ASSET else read_published_with_lineage
        _, report = read(store, asset, day, daily_partitions)
        entries.append(
            {
                "asset": asset,
                "partition": day,
                "object_key": report.object_key,
                "content_sha256": report.content_sha256,
                "rows": report.rows,
            }
        )
    return entries


def declaration(manifest: dict) -> ModelInputs:
    """The model-input declaration the manifest was written with; a manifest written before
    manifests carried one reads as the contract's."""
    recorded = manifest.get("model_input_declaration")
    return MODEL_INPUTS if recorded is None else ModelInputs.from_dict(recorded)


def manifest_inputs(manifest: dict, asset: str | None = None) -> list[dict]:
    """The manifest's entries for one asset (default: the examples table), oldest day first."""
    asset = asset or declaration(manifest).examples.table
    return sorted(
        (entry for entry in manifest["inputs"] if entry["asset"] == asset),
        key=lambda entry: entry["partition"],
    )


def model_inputs(manifest: dict) -> list[dict]:
    """The entries day D's model reads: the window's examples, and each declared history table
    of the window's days before D (history; never D's own). Derived from the entries, so a
    manifest written before the model read history gives the same answer."""
    declared = declaration(manifest)
    history = [
        entry
        for spec in declared.history
        for entry in manifest_inputs(manifest, spec.table)
        if entry["partition"] < manifest["partition"]
    ]
    return [*manifest_inputs(manifest, declared.examples.table), *history]


def model_input_tables(manifest: dict) -> dict[str, str]:
    """{object key: table} of what day D's model reads: the trainer's `--input-key TABLE=KEY`."""
    return {entry["object_key"]: entry["asset"] for entry in model_inputs(manifest)}


def _model_input_days(manifest: dict) -> dict[str, list[str]]:
    days: dict[str, list[str]] = {}
    for entry in model_inputs(manifest):
        days.setdefault(entry["asset"], []).append(entry["partition"])
    return days


def build_training_dataset(
    inputs: ModelInputs = MODEL_INPUTS,
    feature_tables: Sequence[FeatureTable] = FEATURE_TABLES,
) -> dg.AssetsDefinition:
    """The training-set asset for one model-input declaration (`inputs`) over the feature
    tables that publish its tables (the asset key stays `training_dataset`)."""
    unpublished = unpublished_tables(inputs, feature_tables)
    if unpublished:
        raise ValueError(
            f"the model-input declaration names tables {unpublished} that no feature asset "
            f"publishes (feature tables: {[t.name for t in feature_tables]}); fix the table names"
        )
    required = required_assets(feature_tables)
    declared = inputs.to_dict()
    history_tables = {spec.table for spec in inputs.history}

    @dg.asset(
        name=ASSET,
        description="The gate-approved window a day's model trains on: the declared examples, "
        "and the declared history tables of the days before each example's day.",
        group_name="training",
        partitions_def=training_partitions,
        deps=[dg.AssetDep(asset, partition_mapping=TRAINING_WINDOW) for asset in required],
        # One day per run: each day's model depends on the one before it.
        backfill_policy=dg.BackfillPolicy.multi_run(1),
        kinds={"json"},
        tags={"layer": "training"},
    )
    def training_dataset(
        context: dg.AssetExecutionContext, storage: ObjectStorage
    ) -> dg.MaterializeResult:
        store = storage.open_store()
        partition = context.partition_key
        entries = []
        for day in training_window(partition):
            try:
                entries += verify_day(store, day, required)
            except PartitionNotPublished as err:
                raise dg.Failure(
                    description=(
                        f"{ASSET} partition {partition} refused its input window "
                        f"({', '.join(required)} must be approved for every day): {err}"
                    ),
                    allow_retries=False,
                ) from err
        manifest = {
            "partition": partition,
            "window_days": TRAINING_WINDOW_DAYS,
            "inputs": entries,
            # What the model reads and how: the trainer, evaluation and guard take it from here.
            "model_input_declaration": declared,
        }
        # Spelled out for audits (model_inputs derives the same from the entries).
        manifest["model_inputs"] = _model_input_days(manifest)
        key = manifest_key(partition)
        stored = store.put_bytes(key, json.dumps(manifest, indent=1, sort_keys=True).encode())
        examples = manifest_inputs(manifest)
        history: dict[str, dict[str, str]] = {}
        for entry in model_inputs(manifest):
            if entry["asset"] in history_tables:
                history.setdefault(entry["asset"], {})[entry["partition"]] = entry["content_sha256"]
        return dg.MaterializeResult(
            data_version=dg.DataVersion(stored.sha256),
            metadata={
                "manifest_key": key,
                "input_partitions": len(examples),
                "verified_objects": len(entries),
                "training_rows": sum(i["rows"] for i in examples),
                "input_data_versions": {i["partition"]: i["content_sha256"] for i in examples},
                # The history the model reads, as of the day before each example's day.
                "history_feature_versions": dg.MetadataValue.json(history),
            },
        )

    return training_dataset


training_dataset = build_training_dataset()
