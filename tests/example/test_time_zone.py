"""Pins the example's data: its `hour_of_day` is the UTC hour on any machine. The local engine,
in a process whose zone is not UTC, gives the hours Spark gives (session zone UTC)."""

import os
import subprocess
import sys

from resources.paths import PROJECT_ROOT

_CHILD = """
import datetime as dt
import pyarrow.compute as pc
from assets.features.logic import CLICK_STREAM_FEATURES, as_table
from scripts.synthetic_events import generate_events

day = dt.date(2026, 11, 1)
events = generate_events(day, 400)
examples = {t.name: t for t in CLICK_STREAM_FEATURES}["training_examples"]
table = as_table(examples.compute(events, day))
impressions = events.filter(pc.equal(events["event_type"], "impression"))
utc_hours = sorted(pc.hour(impressions["event_time"]).to_pylist())
assert sorted(table["hour_of_day"].to_pylist()) == utc_hours, "hours follow the machine's zone"
print("utc hours", len(utc_hours))
"""


def test_the_local_engine_gives_utc_hours_in_a_process_east_of_utc():
    env = {**os.environ, "TZ": "Asia/Kolkata", "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "utc hours" in done.stdout
