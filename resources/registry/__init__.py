"""The model registry:
registry   immutable version records, aliases moved by compare-and-swap, numbered history
resource   the registry as a Dagster resource on the same object storage
serving    alias -> version -> verified checkpoint -> weights
reproduce  a version record back to its exact inputs, and the re-run to the same fingerprint
promotion_identity  which runs get the credentials that may write the registry
"""
