"""Daily feature tables, from the approved events snapshot:
logic         pure feature computations: one day of events in, one feature table out
query         a feature table as SQL every engine runs alike (sums, finish), run on DuckDB
day_events    a day of events in DuckDB (a scanned snapshot file), within a memory limit
compensated   per-key Kahan sums in row order, through pandas' grouped-sum kernel
spark         the scale-out engine: the same queries on Spark, a Dagster Pipes job
snapshot      the approved events snapshot of a day, read from storage once per run
reference_sql the example's tables in plain DuckDB SQL (the features benchmark's baseline)
assets        the Dagster feature assets: compute, gate, publish
"""
