"""Source assets:
daily_events  the day's upstream events read once from the warehouse, gated and snapshotted
"""
