"""Resources, one subpackage per capability (storage, warehouse, trainer) plus the notifier and
the factory that builds them all per environment.

Kept import-light: `resources.storage.object_store` must stay importable without Dagster (the
trainer uses it), so these packages import nothing eagerly."""
