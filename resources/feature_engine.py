"""Where the feature tables are computed, chosen per deployment (`FEATURE_ENGINE`).

- `local` (default): DuckDB in the run's own process, over the day's snapshot.
- `spark`: the scale-out path, a Spark application (`assets/features/spark/job.py`) launched
  through Dagster Pipes for all of a step's days at once. Locally and in CI it is a local
  process running Spark in local mode; in production, a job run on EMR Serverless through
  dagster-aws's Pipes client. The job copies each day's approved snapshot while checking its
  sha256, Spark computes from that copy and writes the table's rows; the asset then gates and
  publishes them exactly as it does the local engine's, so both engines publish the same bytes.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from assets.features.spark.paths import refusal_uri, table_uri
from resources.paths import PROJECT_ROOT

ENGINES = ("local", "spark")
JOB_MODULE = "assets.features.spark.job"


class NoEngineOutput(RuntimeError):
    """The engine wrote no complete table for a day (it failed, or refused the day)."""


def read_output(output: str, table: str, partition: str, schema: pa.Schema) -> pa.RecordBatchReader:
    """A table of a day the Spark job wrote under `output`, streamed in its order (part files
    by name) as `schema`; only a complete one (Spark's _SUCCESS marker), else the job's reason."""
    filesystem, path = pafs.FileSystem.from_uri(table_uri(output, table, partition))
    if filesystem.get_file_info(f"{path}/_SUCCESS").type != pafs.FileType.File:
        refusal_fs, refusal = pafs.FileSystem.from_uri(refusal_uri(output, partition))
        if refusal_fs.get_file_info(refusal).type == pafs.FileType.File:
            with refusal_fs.open_input_stream(refusal) as stream:
                raise NoEngineOutput(json.loads(stream.read())["reason"])
        raise NoEngineOutput(
            f"{table} {partition}: the Spark job wrote no complete output at {output}; the "
            "job's own log says why (the run's Pipes log, or on EMR Serverless the job run's "
            "CloudWatch logs). The last approved version stays published: materialize the "
            "partition again once the cause is fixed."
        )
    parts = sorted(
        info.path
        for info in filesystem.get_file_info(pafs.FileSelector(path))
        if info.is_file and info.base_name.startswith("part-")
    )

    def batches() -> Iterator[pa.RecordBatch]:
        for part in parts:
            with filesystem.open_input_file(part) as source:
                for batch in pq.ParquetFile(source).iter_batches():
                    yield from pa.Table.from_batches([batch]).cast(schema).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


def emr_start_job_run_params(
    application_id: str, execution_role_arn: str, entry_point: str, submit_parameters: str
) -> dict[str, Any]:
    """EMR Serverless's StartJobRun request for the feature job (Pipes adds its own env)."""
    return {
        "applicationId": application_id,
        "executionRoleArn": execution_role_arn,
        "name": "feature-tables",
        "jobDriver": {
            "sparkSubmit": {
                "entryPoint": entry_point,
                "sparkSubmitParameters": submit_parameters,
            }
        },
        # The Pipes client reads the job's log lines and messages from CloudWatch, and only
        # where the job run logs there.
        "configurationOverrides": {
            "monitoringConfiguration": {"cloudWatchLoggingConfiguration": {"enabled": True}}
        },
    }


class FeatureEngine(dg.ConfigurableResource):
    """The engine the feature assets compute their tables on (see the module docstring)."""

    # "local" or "spark" (ENGINES); a str, as Dagster resolves it from FEATURE_ENGINE at run time.
    engine: str = "local"
    # Where the Spark job finds the tables it is asked for, as `module:ATTRIBUTE` naming a
    # sequence of FeatureTables (FEATURE_ENGINE_DECLARATIONS; default: the project's own).
    declarations: str = "assets.features.logic:FEATURE_TABLES"
    # A local launch: Spark's master inside the launched process.
    spark_master: str = "local[2]"
    # Where Spark writes the tables, one folder per launch; empty: the step's scratch folder
    # (a local launch only: a cluster needs a shared location, an s3:// prefix).
    output_uri: str = ""
    # A production launch on EMR Serverless: the application, the role its job runs as (it
    # reads the snapshots and writes output_uri, nothing else), the job's entry point (this
    # project's assets/features/spark/job.py, uploaded with the code as --py-files).
    emr_application_id: str = ""
    emr_execution_role_arn: str = ""
    emr_entry_point: str = ""
    emr_submit_parameters: str = ""

    @property
    def runs_in_process(self) -> bool:
        if self.engine not in ENGINES:
            raise ValueError(f"FEATURE_ENGINE={self.engine!r} is not one of {ENGINES}")
        return self.engine == "local"

    def compute_days(
        self,
        context: dg.AssetExecutionContext,
        tables: Sequence[str],
        snapshots: Mapping[str, tuple[str, str]],
        scratch: Path,
    ) -> str:
        """Launch the Spark job for `tables` of the days of `snapshots` (partition -> snapshot
        URI and sha256); the URI its outputs are under (`read_output`, then `discard`)."""
        output = (
            f"{self.output_uri.rstrip('/') or (scratch / 'spark').as_uri()}/"
            f"{context.run.run_id}-{uuid.uuid4().hex[:8]}"
        )
        extras = {
            "tables": list(tables),
            "declarations": self.declarations,
            "days": {p: {"snapshot": uri, "sha256": sha} for p, (uri, sha) in snapshots.items()},
            "output": output,
        }
        if self.emr_application_id:
            from dagster_aws.pipes import PipesEMRServerlessClient

            PipesEMRServerlessClient().run(
                context=context,
                start_job_run_params=emr_start_job_run_params(
                    self.emr_application_id,
                    self.emr_execution_role_arn,
                    self.emr_entry_point,
                    self.emr_submit_parameters,
                ),
                extras=extras,
            )
        else:
            dg.PipesSubprocessClient(cwd=str(PROJECT_ROOT)).run(
                context=context,
                command=[sys.executable, "-m", JOB_MODULE],
                extras=extras,
                env=local_spark_environment(self.spark_master),
            )
        return output

    @staticmethod
    def discard(output: str) -> None:
        """Remove a launch's outputs and staged snapshots once the step has published them
        (on S3 a table the size of the day's events would otherwise stay behind)."""
        filesystem, path = pafs.FileSystem.from_uri(output)
        if filesystem.get_file_info(path).type == pafs.FileType.Directory:
            filesystem.delete_dir(path)


def local_spark_environment(master: str) -> dict[str, str]:
    """What a local Spark job needs: its master, and Python workers that run this interpreter
    with the project importable (the job pickles the tables' finish functions by reference)."""
    path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {
        "SPARK_MASTER": master,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYTHONPATH": path,
    }
