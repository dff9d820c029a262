"""The verified training set of one day: which example partitions a model trains on, with the
content hash of each (what audits need to reproduce a model).

It stands between the quality gates and the trainer: a window containing a day whose examples
or source events are blocked by their gates, or whose bytes changed after approval, is refused
and nothing is written.
"""

import json

import dagster as dg

from assets.partitions import (
    TRAINING_WINDOW,
    TRAINING_WINDOW_DAYS,
    daily_partitions,
    training_partitions,
    training_window,
)
from assets.publishing.gate_reports import PartitionNotPublished, read_published_with_lineage
from assets.publishing.keys import partition_object_key
from resources.storage.resource import ObjectStorage

ASSET = "training_dataset"
EXAMPLES_ASSET = "training_examples"


def manifest_key(partition: str) -> str:
    """Where the day's training-set manifest lives (`datasets/training_dataset/<D>.json`)."""
    return partition_object_key(
        ASSET, partition, training_partitions, layer="datasets", suffix="json"
    )


@dg.asset(
    name=ASSET,
    description="The gate-approved window of labelled examples a day's model trains on.",
    group_name="training",
    partitions_def=training_partitions,
    deps=[
        dg.AssetDep(
            EXAMPLES_ASSET,
            partition_mapping=TRAINING_WINDOW,
        )
    ],
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
    inputs = []
    for day in training_window(partition):
        try:
            _, report = read_published_with_lineage(store, EXAMPLES_ASSET, day, daily_partitions)
        except PartitionNotPublished as err:
            raise dg.Failure(
                description=f"{ASSET} partition {partition} refused its input window: {err}",
                allow_retries=False,
            ) from err
        inputs.append(
            {
                "asset": EXAMPLES_ASSET,
                "partition": day,
                "object_key": report.object_key,
                "content_sha256": report.content_sha256,
                "rows": report.rows,
            }
        )
    manifest = {"partition": partition, "window_days": TRAINING_WINDOW_DAYS, "inputs": inputs}
    key = manifest_key(partition)
    stored = store.put_bytes(key, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return dg.MaterializeResult(
        data_version=dg.DataVersion(stored.sha256),
        metadata={
            "manifest_key": key,
            "input_partitions": len(inputs),
            "training_rows": sum(i["rows"] for i in inputs),
            "input_data_versions": {i["partition"]: i["content_sha256"] for i in inputs},
        },
    )
