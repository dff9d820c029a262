"""The next-day guard: production judged on the first day of data it has never seen, against
the version it replaced, and rolled back on its own when it is worse.

Modules, one job each:
  asset     `model_next_day_guard`: score both versions on the day's rows, decide, act once
  decision  the verdict from the paired-bootstrap interval and the tolerances (run config)
  rollback  the compare-and-swap back to the replaced version, and the demoted mark
  records   the day's verdict and rollback markers (create-only), the alert marker prefix
"""
