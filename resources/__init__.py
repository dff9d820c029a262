"""Resources: object storage, the warehouse, and the factory that builds them per environment.

Kept import-light: `resources.object_store` must stay importable without Dagster (the trainer
uses it), so this package imports nothing eagerly.
"""
