"""A feature table's query on Spark: the same SQL, sums and finish as on DuckDB, so the rows
and their order, hence the published bytes, are the same.

The per-key sums go through `compensated.group_sums`, the same kernel as on DuckDB: the rows
of a bucket of keys (all of each key's rows, hash-bucketed) arrive in one pandas frame, are
put in snapshot order and summed. The finish runs batch by batch on the sorted rows, which
keeps their order: Spark's sort puts ordered ranges in ordered partitions, and a map over
batches keeps each partition's order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import DoubleType, FloatType

from assets.features.compensated import as_summed, group_sums, summed_rows
from assets.features.query import SNAPSHOT_ROW, FeatureQuery, finished_batches

# Buckets of keys whose rows one Python worker sums at a time: more buckets, less memory each.
SUM_BUCKETS = 64


def day_events(spark: SparkSession, snapshot_uri: str) -> DataFrame:
    """The day's snapshot as `events`, each row numbered by its position in the file."""
    events = spark.read.parquet(snapshot_uri).select(
        "*", F.col("_metadata.row_index").alias(SNAPSHOT_ROW)
    )
    events.createOrReplaceTempView("events")
    return events


def _compensated_sums(spark: SparkSession, query: FeatureQuery) -> DataFrame:
    """Per value of the query's key, its sums added in snapshot order (Kahan, as on DuckDB)."""
    key, names = query.sums_key, list(query.sums)
    # A null key's rows are summed for no key, as on DuckDB (the join below matches no null);
    # a row without a value to add changes no sum, so only the rows that hold one are shuffled.
    values = (
        spark.table("events")
        .where(summed_rows(key, list(query.sums.values())))
        .selectExpr(
            f"{key} AS sum_key",
            SNAPSHOT_ROW,
            *(f"{as_summed(value)} AS {name}" for name, value in query.sums.items()),
        )
    )
    key_type = values.schema["sum_key"].dataType.simpleString()

    def add(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values(SNAPSHOT_ROW, kind="stable")
        keys, sums = group_sums(frame["sum_key"].to_numpy(), frame[names].to_numpy())
        return pd.DataFrame({key: keys, **{name: sums[:, n] for n, name in enumerate(names)}})

    buckets = values.withColumn("sum_bucket", F.pmod(F.hash("sum_key"), F.lit(SUM_BUCKETS)))
    schema = ", ".join([f"`{key}` {key_type}", *(f"`{name}` double" for name in names)])
    return buckets.groupBy("sum_bucket").applyInPandas(add, schema)


def feature_table(
    spark: SparkSession, query: FeatureQuery, schema: pa.Schema, day: dt.date
) -> DataFrame:
    """The day's table in its order and schema, over the `events` view of `day_events`."""
    rows = spark.sql(query.sql)
    if query.sums_key is not None:
        key = query.sums_key
        rows = rows.join(_compensated_sums(spark, query), on=key, how="left")
        # A key none of whose rows was summed sums to 0, as on DuckDB; a null key's sums stay
        # null, and a float key's NaN's too (the kernel numbers neither).
        missing = F.col(key).isNull()
        if isinstance(rows.schema[key].dataType, FloatType | DoubleType):
            missing = missing | F.isnan(F.col(key))
        rows = rows.withColumns(
            {
                name: F.when(missing, F.lit(None)).otherwise(F.coalesce(F.col(name), F.lit(0.0)))
                for name in query.sums
            }
        )
    # Nulls last, as DuckDB's run orders them (Spark's ascending default puts them first).
    ordered = rows.orderBy(*(F.asc_nulls_last(column) for column in query.order_by))

    def finish(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return finished_batches(query, batches, day)

    return ordered.mapInArrow(finish, from_arrow_schema(schema))
