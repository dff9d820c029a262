"""SLOs of the daily pipeline, computed from the instance's run records.

Per daily run (features; training, evaluation and promotion): schedule-to-start and its queue
part, duration, outcome and cost; per day: end-to-end time from "data complete" to "model
promoted" (or to the verdict that stopped it), the success ratio over the trailing days and the
production model's age. `pipeline_slo` records them as numeric metadata per day (the UI plots
them) with asset checks as the SLO verdicts; `scripts/slo_exporter.py` serves the same numbers
to Prometheus.
"""
