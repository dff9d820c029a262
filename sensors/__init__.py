"""Triggers: the upstream-completeness sensor and the schedules, with the daily queue priority."""
