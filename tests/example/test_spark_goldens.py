"""Pins the example's data on the scale-out engine: Spark (local mode, in this process) computes
each example feature table of every golden case, nulls, tied modes and the empty day included,
to the goldens' exact bytes, the same the local engine is held to (test_feature_logic_bytes)."""

import pytest

from assets.features.logic import CLICK_STREAM_FEATURES
from tests.example.golden_inputs import DAY, golden_inputs
from tests.example.goldens import digests, load
from tests.support.spark import local_spark, spark_unavailable, write_snapshot

if why := spark_unavailable():
    pytest.skip(why, allow_module_level=True)


from assets.features.spark.engine import day_events, feature_table

GOLDENS = load()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark():
    yield from local_spark()


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden-snapshots")
    paths = {}
    for name, events in golden_inputs().items():
        paths[name] = write_snapshot(events, root / f"{name}.parquet")
    return paths


@pytest.mark.parametrize("case", sorted(GOLDENS))
def test_spark_computes_the_example_goldens(case, spark, snapshots):
    events_name, table_name = case.split("/")
    table = {t.name: t for t in CLICK_STREAM_FEATURES}[table_name]
    day_events(spark, snapshots[events_name])
    rows = feature_table(spark, table.query, table.schema, DAY).toArrow()
    actual = digests(rows.cast(table.schema))
    assert actual == GOLDENS[case], (
        f"{table_name} from the '{events_name}' events on Spark differs from the local engine's "
        "golden bytes: the query's SQL, sums or finish behave differently on Spark"
    )
