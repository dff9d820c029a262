"""A Spark session in local mode inside the test process: the feature job's own, with the
environment a local launch gets."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def spark_unavailable() -> str | None:
    """Why Spark's local mode cannot run here (no pyspark, no Java), or None."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (requirements-dev.lock installs it)"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "Spark's local mode needs Java 17+ on PATH or JAVA_HOME"
    return None


def local_spark() -> Iterator[object]:
    """Body of a module-scoped fixture: the job's own session on `local[2]`, with a local
    launch's environment, both undone after."""
    from assets.features.spark.job import spark_session
    from resources.feature_engine import local_spark_environment

    with pytest.MonkeyPatch.context() as patch:
        for name, value in local_spark_environment("local[2]").items():
            patch.setenv(name, value)
        session = spark_session()
        try:
            yield session
        finally:
            session.stop()


def write_snapshot(events: pa.Table, path: os.PathLike[str]) -> str:
    """The day's events as a snapshot file of several row groups (Spark splits it, and each
    row's position must still count from the file's start); its URI."""
    pq.write_table(events, path, row_group_size=1000)
    return Path(path).resolve().as_uri()
