"""The feature tables on Spark, the scale-out engine: the same queries, the same bytes.

engine   a feature table's query as a Spark DataFrame: SQL, per-key compensated sums, finish
paths    where the job writes under a launch's output (tables, refusals, staged snapshots)
job      the Spark application: a Dagster Pipes process computing tables of days from their
         approved snapshots (spark-submit on a cluster, a local process on a laptop)
"""
