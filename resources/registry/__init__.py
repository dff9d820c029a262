"""The model registry: immutable version records, aliases moved by compare-and-swap, history."""
