"""Schedules and sensors that decide when daily runs are requested."""
