"""SLOs of the daily pipeline, computed from the instance's run records.

Per daily run (features; training, evaluation and promotion): schedule-to-start and its queue
part, duration, outcome and cost; per day: end-to-end time from "data complete" to "model
promoted" (or to the verdict that stopped it), the success ratio over the trailing days and the
production model's age. `pipeline_slo` records them as numeric metadata per day (the UI plots
them) with asset checks as the SLO verdicts; `scripts/slo_exporter.py` serves the same numbers
to Prometheus.

Modules, one job each:
  asset           `pipeline_slo`: the day's numbers as metadata, the verdicts as its checks
  config          the SLO thresholds as run config
  runs            which runs are the daily pipeline's, from run records and events
  tags            the run tags that say when a run was asked for
  measures        the SLO numbers as pure functions of the run chains
  report          one day's SLO numbers from the instance and the registry
  production_age  how old the production model was when the day's pipeline ended
  cost            a run's seconds times the resources it held, at the configured prices
  verdicts        the day's SLO verdicts: number, threshold, run
  metrics         the metadata keys and the Prometheus metrics they become
  alerts          each breach alerted once (a create-only marker in the object store)
"""
