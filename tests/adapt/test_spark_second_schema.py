"""The scale-out engine on the second schema: a team's own tables declared as queries (a string
key, a date-less timestamp, other kinds and label) give the same bytes on Spark as on the
local engine, and the same counts as the team's plain-Python tables of `page_view_features`."""

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from assets.features.compensated import present
from assets.features.logic import as_table
from assets.features.query import SNAPSHOT_ROW, FeatureQuery, run_on_duckdb
from assets.publishing.parquet import to_parquet_bytes
from resources.warehouse.backends import normalize_events
from tests.adapt.page_view_features import (
    VISIT_OUTCOMES_SCHEMA,
    VISITOR_DAYS_SCHEMA,
    _page_ids,
    _with_day,
    visit_outcomes,
    visitor_days,
)
from tests.adapt.page_views import PAGE_VIEWS, generate_page_views
from tests.support.spark import local_spark, spark_unavailable, write_snapshot

if why := spark_unavailable():
    pytest.skip(why, allow_module_level=True)


from assets.features.spark.engine import day_events, feature_table

pytestmark = pytest.mark.slow
DAY = dt.date(2026, 11, 4)
_LOAD_OF_VIEWS = "CASE WHEN action = 'view' THEN load_ms END"


def _finish_visitor_days(rows: pa.Table, day: dt.date) -> pa.Table:
    loads, counted = rows["load"].to_numpy(), rows["load_values"].to_numpy()
    mean = np.divide(loads, counted, out=np.full(len(loads), np.nan), where=counted > 0)
    columns = {name: rows[name] for name in ("visitor", "views", "scrolls", "signups")}
    return _with_day(day, VISITOR_DAYS_SCHEMA, {**columns, "mean_load_ms": mean})


VISITOR_DAYS_QUERY = FeatureQuery(
    sql=f"""
        SELECT visitor,
            count(*) FILTER (WHERE action = 'view') AS views,
            count(*) FILTER (WHERE action = 'scroll') AS scrolls,
            count(*) FILTER (WHERE action = 'signup') AS signups,
            count(*) FILTER (WHERE {present(_LOAD_OF_VIEWS)}) AS load_values
        FROM events GROUP BY visitor
    """,
    order_by=("visitor",),
    finish=_finish_visitor_days,
    sums_key="visitor",
    sums={"load": _LOAD_OF_VIEWS},
)


def _finish_visit_outcomes(rows: pa.Table, day: dt.date) -> pa.Table:
    columns = {
        name: rows[name] for name in VISIT_OUTCOMES_SCHEMA.names[1:] if name in rows.schema.names
    }
    return _with_day(
        day, VISIT_OUTCOMES_SCHEMA, {**columns, "page_id": _page_ids(rows["page_path"])}
    )


VISIT_OUTCOMES_QUERY = FeatureQuery(
    sql=f"""
        WITH signed AS (SELECT DISTINCT session_id FROM events WHERE action = 'signup')
        SELECT v.session_id, v.visitor, v.page_path, v.referrer, v.browser,
            CAST(hour(v.viewed_at) AS TINYINT) AS hour, v.load_ms,
            s.session_id IS NOT NULL AS signed_up, v.{SNAPSHOT_ROW}
        FROM events v LEFT JOIN signed s ON s.session_id = v.session_id
        WHERE v.action = 'view'
    """,
    order_by=("session_id", SNAPSHOT_ROW),
    finish=_finish_visit_outcomes,
)

REFERRER_DAYS_SCHEMA = pa.schema(
    [
        pa.field("visit_date", pa.date32(), nullable=False),
        pa.field("referrer", pa.string()),
        pa.field("views", pa.int64(), nullable=False),
        pa.field("load_ms", pa.float64()),
    ]
)


def _finish_referrer_days(rows: pa.Table, day: dt.date) -> pa.Table:
    columns = {name: rows[name] for name in ("referrer", "views")}
    return _with_day(day, REFERRER_DAYS_SCHEMA, {**columns, "load_ms": rows["load"].to_numpy()})


# A nullable key (visits without a referrer): its row sorts last on both engines, and its sum
# is null on both.
REFERRER_DAYS_QUERY = FeatureQuery(
    sql="SELECT referrer, count(*) AS views FROM events GROUP BY referrer",
    order_by=("referrer",),
    finish=_finish_referrer_days,
    sums_key="referrer",
    sums={"load": "load_ms"},
)

CASES = {
    "referrer_days": (REFERRER_DAYS_QUERY, REFERRER_DAYS_SCHEMA, None),
    "visitor_days": (VISITOR_DAYS_QUERY, VISITOR_DAYS_SCHEMA, visitor_days),
    "visit_outcomes": (VISIT_OUTCOMES_QUERY, VISIT_OUTCOMES_SCHEMA, visit_outcomes),
}


@pytest.fixture(scope="module")
def spark():
    yield from local_spark()


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    events = normalize_events(generate_page_views(DAY, visits=3000), PAGE_VIEWS)
    uri = write_snapshot(events, tmp_path_factory.mktemp("page-views") / "events.parquet")
    return events, uri


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_teams_query_gives_the_same_bytes_on_spark(name, spark, day):
    query, schema, plain_python = CASES[name]
    events, uri = day
    local = as_table(run_on_duckdb(query, schema, events, DAY))
    day_events(spark, uri)
    on_spark = feature_table(spark, query, schema, DAY).toArrow().cast(schema)
    assert local.num_rows >= 5
    assert to_parquet_bytes(on_spark).data == to_parquet_bytes(local).data
    if plain_python is None:
        assert local["referrer"][-1].as_py() is None and local["load_ms"][-1].as_py() is None
        return
    # The query is the team's table: its plain-Python twin agrees (means to rounding).
    twin = as_table(plain_python(events, DAY))
    for column in schema.names:
        if pa.types.is_floating(schema.field(column).type):
            assert np.allclose(
                local[column].to_numpy(zero_copy_only=False),
                twin[column].to_numpy(zero_copy_only=False),
                rtol=1e-12,
                equal_nan=True,
            ), column
        else:
            assert local[column].equals(twin[column]), column


KEY_SUMS_SCHEMA = pa.schema(
    [
        pa.field("key", pa.float64()),
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("total", pa.float64()),
        pa.field("rare_total", pa.float64()),
    ]
)


def _finish_key_sums(rows: pa.Table, day: dt.date) -> pa.Table:
    columns = {name: rows[name] for name in ("key", "rows")}
    sums = {name: rows[name].to_numpy(zero_copy_only=False) for name in ("total", "rare_total")}
    return pa.table(
        {
            **columns,
            **{name: pa.array(s, pa.float64(), from_pandas=True) for name, s in sums.items()},
        },
        schema=KEY_SUMS_SCHEMA,
    )


def test_a_float_keys_nan_and_null_and_a_key_without_values_sum_alike_on_both_engines(
    spark, tmp_path
):
    """Per key, a sum of every row and one of a few: a key whose rows hold none of the few
    sums to 0, and the NaN and null keys (rows no sum adds) to null, on DuckDB and Spark."""
    rng = np.random.default_rng(3)
    rows = 4000
    keys = rng.choice([0.5, 1.5, 2.5, np.nan], rows)
    keys[rng.random(rows) < 0.05] = None
    values = rng.lognormal(2.0, 1.0, rows)
    # Key 2.5 holds no rare row.
    rare = (rng.random(rows) < 0.1) & (keys != 2.5)
    events = pa.table(
        {
            "key": pa.array(keys, mask=np.isnan(keys) & (rng.random(rows) < 0.5)),
            "value": values,
            "rare": rare,
        }
    )
    query = FeatureQuery(
        sql="SELECT key, count(*) AS rows FROM events GROUP BY key",
        order_by=("key",),
        finish=_finish_key_sums,
        sums_key="key",
        sums={"total": "value", "rare_total": "CASE WHEN rare THEN value END"},
    )
    local = as_table(run_on_duckdb(query, KEY_SUMS_SCHEMA, events, DAY))
    day_events(spark, write_snapshot(events, tmp_path / "events.parquet"))
    on_spark = feature_table(spark, query, KEY_SUMS_SCHEMA, DAY).toArrow().cast(KEY_SUMS_SCHEMA)
    assert to_parquet_bytes(on_spark).data == to_parquet_bytes(local).data
    by_key = {str(row["key"]): row for row in local.to_pylist()}
    assert by_key["2.5"]["rare_total"] == 0.0 and by_key["0.5"]["rare_total"] > 0
    assert by_key["nan"]["total"] is None and by_key["None"]["total"] is None
