"""The Spark application of the feature tables: a Dagster Pipes process.

Launched by the feature assets (`resources/feature_engine.py`): on a laptop or in CI as a local
process running Spark in local mode, in production by spark-submit on EMR Serverless (the
entry point is this module, the project's code shipped with the job). It reads from the Pipes
extras which tables of which days to compute, each day's approved snapshot (its URI and
sha256) and where to write. It copies each snapshot under the output URI, hashing it as it
copies, and Spark reads that checked copy; each table of each day is written as parquet parts
in order (by name) under `table_uri`, ended by Spark's `_SUCCESS`; a day whose snapshot is not
the approved one gets its reason at `refusal_uri` instead. The asset reads those places (Pipes
messages only report progress, so a lost message loses nothing) and gates and publishes.

    extras: {"tables": [name, ...], "declarations": "module:ATTRIBUTE",
             "days": {partition: {"snapshot": uri, "sha256": hex}}, "output": uri}
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
from collections.abc import Sequence
from typing import Any

import pyarrow.fs as pafs
from dagster_pipes import PipesContext, open_dagster_pipes
from pyspark.sql import SparkSession

from assets.features.logic import FeatureTable
from assets.features.spark.engine import day_events, feature_table
from assets.features.spark.paths import refusal_uri, staged_snapshot_uri, table_uri
from resources.storage.object_store import HashingReader


def spark_session() -> SparkSession:
    """The job's session: UTC hours and days; the master spark-submit or SPARK_MASTER names."""
    builder = SparkSession.builder.appName("feature-tables").config(
        # Hours and days are UTC ones, as on the local engine.
        "spark.sql.session.timeZone",
        "UTC",
    )
    # spark-submit names the cluster's master; a local launch names local[N].
    if "SPARK_MASTER" in os.environ:
        builder = builder.master(os.environ["SPARK_MASTER"]).config("spark.ui.enabled", "false")
    return builder.getOrCreate()


def declared_tables(reference: str, names: Sequence[str]) -> list[FeatureTable]:
    """The named tables of the declaration `module:ATTRIBUTE`; each must have a query."""
    module, attribute = reference.split(":")
    declared = {table.name: table for table in getattr(importlib.import_module(module), attribute)}
    tables = []
    for name in names:
        if name not in declared:
            raise ValueError(f"{reference} declares no feature table {name!r}")
        if declared[name].query is None:
            raise ValueError(
                f"feature table {name!r} has no query, so only the local engine can compute "
                "it: declare it as a FeatureQuery (assets/features/query.py) to run it on Spark"
            )
        tables.append(declared[name])
    return tables


class SnapshotChanged(ValueError):
    """The snapshot's bytes are not the approved ones."""


def stage_snapshot(partition: str, uri: str, expected_sha256: str, staged_uri: str) -> None:
    """Copy the approved snapshot to `staged_uri`, hashing the bytes as they are copied, and
    refuse them unless they are the approved ones: Spark then reads exactly what was checked
    (it reads a file several times, and the original could change between reads)."""
    source_fs, source = pafs.FileSystem.from_uri(uri)
    staged_fs, staged = pafs.FileSystem.from_uri(staged_uri)
    staged_fs.create_dir(staged.rsplit("/", 1)[0], recursive=True)
    with source_fs.open_input_stream(source) as stream, staged_fs.open_output_stream(staged) as out:
        reader = HashingReader(stream)
        for chunk in reader.chunks():
            out.write(chunk)
    if reader.sha256 != expected_sha256:
        staged_fs.delete_file(staged)
        raise SnapshotChanged(
            f"partition {partition}: the snapshot at {uri} has sha256 {reader.sha256}, "
            f"not the approved {expected_sha256}; it was changed after approval. Re-run the "
            "day's daily_events to approve the warehouse's rows again."
        )


def compute(pipes: PipesContext, spark: SparkSession, extras: dict[str, Any]) -> None:
    """Each day's tables; a day whose snapshot changed is refused (the reason written where
    the asset reads it) and the other days go on, as the local engine's partitions do."""
    tables = declared_tables(extras["declarations"], extras["tables"])
    output = extras["output"].rstrip("/")
    for partition, snapshot in sorted(extras["days"].items()):
        staged = staged_snapshot_uri(output, partition)
        try:
            stage_snapshot(partition, snapshot["snapshot"], snapshot["sha256"], staged)
        except SnapshotChanged as refused:
            filesystem, path = pafs.FileSystem.from_uri(refusal_uri(output, partition))
            filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
            with filesystem.open_output_stream(path) as out:
                out.write(json.dumps({"partition": partition, "reason": str(refused)}).encode())
            pipes.log.error(str(refused))
            continue
        day_events(spark, staged)
        for table in tables:
            written = table_uri(output, table.name, partition)
            rows = feature_table(spark, table.query, table.schema, dt.date.fromisoformat(partition))
            rows.write.mode("errorifexists").parquet(written)
            pipes.report_custom_message({"table": table.name, "partition": partition})
            pipes.log.info(f"{table.name} {partition}: written to {written}")


def main() -> None:
    with open_dagster_pipes() as pipes:
        spark = spark_session()
        try:
            compute(pipes, spark, dict(pipes.extras))
        finally:
            spark.stop()


if __name__ == "__main__":
    main()
