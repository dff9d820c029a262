"""The warehouse:
backends      ADBC access to SQLite and PostgreSQL, every statement built from the source contract
day_read      one day collected from the driver's record batches, normalised batch by batch
resource      the Dagster resource: one day of the source table, the watermark, retry calibration
errors        which warehouse errors are worth retrying, and the backoff
"""
