"""The model registry in Dagster: promotion, rollback, the production version."""
