"""The warehouse:
backends      ADBC access to SQLite and PostgreSQL, every statement built from the source contract
resource      the Dagster resource: one day of the source table, the watermark, retry calibration
errors        which warehouse errors are worth retrying, and the backoff
"""
