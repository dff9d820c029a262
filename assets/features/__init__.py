"""Daily feature tables, from the approved events snapshot:
logic         pure feature computations: one day of events in, one feature table out
grouped       per-group counts, distinct counts, modes and pandas-exact sums, vectorized
assets        the Dagster feature assets: compute, gate, publish
"""
