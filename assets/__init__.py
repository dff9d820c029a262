"""Software-defined assets, one subpackage per capability:
  sources       the day's upstream events read once from the warehouse, gated and snapshotted
  features      daily feature tables: pure computations and the assets that publish them
  quality       quality gates as pure functions, their thresholds, the deadline check
  publishing    write-audit-publish: object keys, parquet bytes, gate reports, verified reads
  model         the daily model: training window, training asset, evaluation, its records
  registry      the model registry in Dagster: promotion, rollback, the production version
  slo           the pipeline's SLOs per day from run records, their verdicts and alerts
plus the shared modules:
  partitions    the daily partitions, day bounds, the training window, the backfill batch size
  jobs          the asset jobs (daily features, deadline checks, daily training)
"""
