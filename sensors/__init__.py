"""Triggers: the sensors and schedules that start runs, with the daily queue priority.

Modules, one job each:
  completeness      the upstream-completeness sensor (the primary daily trigger)
  schedules         the fallback daily schedule, the deadline checks' schedule, queue priority
  training_trigger  the sensor that requests the newest day's training after its features run
"""
