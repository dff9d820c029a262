"""Resources, one subpackage per capability:
  storage       the object store (local directory or S3) and its Dagster resources
  warehouse     the upstream event schema, ADBC backends, the resource, retryable errors
  trainer       where the trainer runs (subprocess or GPU pod) and the Pipes bridge
  registry      the model registry: version records, aliases moved by CAS, serving loads
plus the shared modules:
  notifier      alerts: logged always, POSTed to a webhook when configured
  factory       the environment switch and the one factory that builds every resource
  feature_engine where feature tables are computed: DuckDB in-process, or Spark via Pipes
  paths         where the project lives on disk
  pricing       what compute costs: USD per CPU-hour and GPU-hour for the SLOs' cost
  environment   the environment drift gate: the interpreter against requirements.lock

Kept import-light: `resources.storage.object_store` must stay importable without Dagster (the
trainer uses it), so these packages import nothing eagerly."""
