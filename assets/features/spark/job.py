"""The Spark application of the feature tables: a Dagster Pipes process.

Launched by the feature assets (`resources/feature_engine.py`): on a laptop or in CI as a local
process running Spark in local mode, in production by spark-submit on EMR Serverless (the
entry point is this module, the project's code shipped with the job). It reads from the Pipes
extras which tables of which days to compute, each day's approved snapshot (its URI and
sha256) and where to write; it checks every snapshot's hash before Spark reads it, writes each
table of each day as parquet files under the output URI, in order (part files by name), and
reports each one back as a Pipes custom message. Gating and publishing stay with the asset.

    extras: {"tables": [name, ...], "declarations": "module:ATTRIBUTE",
             "days": {partition: {"snapshot": uri, "sha256": hex}}, "output": uri}
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import os
from collections.abc import Sequence
from typing import Any

import pyarrow.fs as pafs
from dagster_pipes import PipesContext, open_dagster_pipes
from pyspark.sql import SparkSession

from assets.features.logic import FeatureTable
from assets.features.spark.engine import day_events, feature_table

_HASH_CHUNK = 8 * 1024 * 1024


def _session() -> SparkSession:
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


def verify_snapshot(partition: str, uri: str, expected_sha256: str) -> None:
    """Refuse a snapshot whose bytes are not the approved ones, before Spark reads them."""
    filesystem, path = pafs.FileSystem.from_uri(uri)
    digest = hashlib.sha256()
    with filesystem.open_input_stream(path) as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != expected_sha256:
        raise ValueError(
            f"partition {partition}: the snapshot at {uri} has sha256 {digest.hexdigest()}, "
            f"not the approved {expected_sha256}; it was changed after approval. Re-run the "
            "day's daily_events to approve the warehouse's rows again."
        )


def compute(pipes: PipesContext, spark: SparkSession, extras: dict[str, Any]) -> None:
    tables = declared_tables(extras["declarations"], extras["tables"])
    for partition, snapshot in sorted(extras["days"].items()):
        verify_snapshot(partition, snapshot["snapshot"], snapshot["sha256"])
        day_events(spark, snapshot["snapshot"])
        for table in tables:
            output = f"{extras['output'].rstrip('/')}/{table.name}/{partition}"
            rows = feature_table(spark, table.query, table.schema, dt.date.fromisoformat(partition))
            rows.write.mode("errorifexists").parquet(output)
            pipes.report_custom_message(
                {"table": table.name, "partition": partition, "output": output}
            )
            pipes.log.info(f"{table.name} {partition}: written to {output}")


def main() -> None:
    with open_dagster_pipes() as pipes:
        spark = _session()
        try:
            compute(pipes, spark, dict(pipes.extras))
        finally:
            spark.stop()


if __name__ == "__main__":
    main()
