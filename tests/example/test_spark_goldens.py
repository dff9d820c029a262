"""Pins the example's data on the scale-out engine: Spark (local mode, in this process) computes
each example feature table of every golden case, nulls, tied modes and the empty day included,
to the goldens' exact bytes, the same the local engine is held to (test_feature_logic_bytes)."""

import os
import sys

import pyarrow.parquet as pq
import pytest

from assets.features.logic import CLICK_STREAM_FEATURES
from resources.paths import PROJECT_ROOT
from tests.example.golden_inputs import DAY, golden_inputs
from tests.example.goldens import digests, load

pytest.importorskip("pyspark", reason="the Spark engine's tests need pyspark (requirements-dev)")

from pyspark.sql import SparkSession

from assets.features.spark.engine import day_events, feature_table

GOLDENS = load()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark():
    # Spark's Python workers: this interpreter, with the project importable (the tables'
    # finish functions travel by reference).
    saved = {name: os.environ.get(name) for name in ("PYSPARK_PYTHON", "PYTHONPATH")}
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), saved["PYTHONPATH"]) if p
    )
    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    yield session
    session.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden-snapshots")
    paths = {}
    for name, events in golden_inputs().items():
        paths[name] = root / f"{name}.parquet"
        # Several row groups: Spark splits the file, and snapshot_row must still count from 0.
        pq.write_table(events, paths[name], row_group_size=1000)
    return paths


@pytest.mark.parametrize("case", sorted(GOLDENS))
def test_spark_computes_the_example_goldens(case, spark, snapshots):
    events_name, table_name = case.split("/")
    table = {t.name: t for t in CLICK_STREAM_FEATURES}[table_name]
    day_events(spark, snapshots[events_name].as_uri())
    rows = feature_table(spark, table.query, table.schema, DAY).toArrow()
    actual = digests(rows.cast(table.schema))
    assert actual == GOLDENS[case], (
        f"{table_name} from the '{events_name}' events on Spark differs from the local engine's "
        "golden bytes: the query's SQL, sums or finish behave differently on Spark"
    )
