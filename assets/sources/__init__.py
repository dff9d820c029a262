"""Source assets:
daily_events      the day's upstream events read once from the warehouse, gated and snapshotted
snapshot_columns  the day's snapshot file as the source gates read it, one column at a time
"""
