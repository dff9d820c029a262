"""Triggers: the sensors and schedules that start runs, with the daily queue priority.

Modules, one job each:
  completeness      the upstream-completeness sensor (the primary daily trigger)
  schedules         the fallback daily schedule, the deadline checks' schedule, queue priority
  training_trigger  the sensor that requests the newest day's training after its features run
  gpu_preemption    a daily training run waiting for the GPU preempts the newest backfill run
  run_health        a started run whose process is gone is failed, so its slots come back
  slo_trigger       day D's SLOs once D's daily pipeline has nothing left to run
  run_failure       a failed run alerts once it will not be retried
"""
