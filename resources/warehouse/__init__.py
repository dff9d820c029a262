"""The warehouse:
event_schema  the upstream contract: the events table as the pipeline reads it
backends      ADBC access to SQLite and PostgreSQL, answering with one canonical Arrow schema
resource      the Dagster resource: one day of raw events, the watermark, retry calibration
errors        which warehouse errors are worth retrying, and the backoff
"""
