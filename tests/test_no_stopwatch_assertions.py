"""No test bounds a measured duration from above by a constant: such a test fails a correct
product whenever the machine is busy. Tests assert order, counts and states; durations are
printed by benchmarks/."""

import textwrap

import pytest

from tests.support.environment import REPO_ROOT
from tests.support.stopwatch import scan, stopwatch_assertions

FLAGGED = {
    "difference of clock reads": """
        import time
        start = time.monotonic()
        work()
        assert time.monotonic() - start < 5
    """,
    "stored elapsed time": """
        import time
        began = time.perf_counter()
        elapsed = time.perf_counter() - began
        assert elapsed <= LIMIT_S
    """,
    "event timestamps against a setting": """
        def _event_time(instance, run_id, kind):
            return instance.all_logs(run_id, of_type=kind)[0].timestamp
        enqueued = _event_time(instance, run_id, "ENQUEUED")
        dequeued = _event_time(instance, run_id, "STARTING")
        assert dequeued - enqueued <= policy["dequeue_interval"] + 5.0
    """,
    "a timestamp within a margin of another": """
        started = record.start_time
        assert started <= record.create_timestamp + MARGIN
    """,
    "a reported duration, reversed comparison": """
        wait = reported["training_schedule_to_start_seconds"]
        assert HOLD + 30 >= wait
    """,
    "inside a chain": """
        import time
        stamp = time.time()
        assert 0 <= time.time() - stamp <= 2
    """,
}

LEFT_ALONE = {
    "ordering of events": """
        enqueued, dequeued, started = (e.timestamp for e in events)
        assert enqueued <= dequeued <= started
    """,
    "lower bound (a busy machine only makes it truer)": """
        wait = reported["training_schedule_to_start_seconds"]
        assert wait >= HOLD_SECONDS
    """,
    "wait loop deadline": """
        import time
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not done():
            time.sleep(0.2)
        assert time.monotonic() < deadline, "never done"
    """,
    "count of passes between two timestamps": """
        enqueued, dequeued = run.create_timestamp, run.end_time
        passes = coordinator_iterations(after=enqueued, until=dequeued)
        assert 1 <= passes <= MAX_PASSES
    """,
    "equality within a tolerance": """
        import pytest
        assert reported["queue_wait_seconds"] == pytest.approx(expected, abs=1e-3)
    """,
    "a setting checked against a limit": """
        assert monitoring["free_slots_after_run_end_seconds"] <= 30
    """,
    "a log entry's time between two event times": """
        [freed] = [entry for entry in dagster.daemon_log() if entry["event"].startswith("Freed")]
        assert failure.timestamp <= freed["at"] <= retry_step.timestamp
    """,
    "a configured limit named like a duration": """
        LIMIT_SECONDS = SloConfig().max_training_schedule_to_start_seconds
        assert HOLD_SECONDS > LIMIT_SECONDS
    """,
    "computed delays, not measured": """
        waits = [retry_delay(attempt, 1.0, 0.25, rng) for attempt in range(3)]
        assert 0.75 <= waits[0] <= 1.25
    """,
    "measured values compared with each other": """
        import time
        before = time.time()
        stamp = make_stamp()
        assert before <= stamp.timestamp() <= time.time()
    """,
}


@pytest.mark.parametrize("source", FLAGGED.values(), ids=FLAGGED.keys())
def test_a_stopwatch_assertion_is_found(source):
    assert len(stopwatch_assertions(textwrap.dedent(source))) == 1


@pytest.mark.parametrize("source", LEFT_ALONE.values(), ids=LEFT_ALONE.keys())
def test_properties_and_wait_loops_are_left_alone(source):
    assert stopwatch_assertions(textwrap.dedent(source)) == []


def test_no_test_asserts_a_measured_duration_against_a_constant():
    findings = scan(REPO_ROOT / "tests")
    assert not findings, "assert order, counts or states instead:\n" + "\n".join(map(str, findings))
