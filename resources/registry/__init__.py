"""The model registry: immutable version records, aliases moved by compare-and-swap, history,
its Dagster resource, and serving loads (alias -> verified checkpoint)."""
