"""Object storage: a Dagster-free store (local directory or S3; shared with `training/`) and the
Dagster resources that open it."""
