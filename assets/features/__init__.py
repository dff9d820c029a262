"""Daily feature tables, from the approved events snapshot:
logic         pure feature computations: one day of events in, one feature table out
day_events    a day of events in DuckDB (a scanned snapshot file), within a memory limit
compensated   per-key Kahan sums in row order, bit for bit as pandas' groupby computes them
snapshot      the approved events snapshot of a day, read from storage once per run
reference_sql the example's tables in plain DuckDB SQL (the features benchmark's baseline)
assets        the Dagster feature assets: compute, gate, publish
"""
