"""The warehouse: the upstream contract (event schema), ADBC backends for SQLite and
PostgreSQL, the Dagster resource, and which errors are worth retrying."""
