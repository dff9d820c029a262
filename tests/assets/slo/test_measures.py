"""The SLO arithmetic on chains of runs: where each number starts and ends."""

import datetime as dt

import pytest

from assets.slo import measures
from assets.slo.runs import FEATURES_JOB, TRAINING_JOB, Attempt, Chain, chains_of
from assets.slo.tags import REQUESTED_AT_TAG, SCHEDULED_EXECUTION_TIME_TAG, request_time

DAY = "2026-11-05"
T0 = dt.datetime(2026, 11, 6, 6, tzinfo=dt.UTC).timestamp()


def attempt(run_id, job=TRAINING_JOB, status="SUCCESS", *, t=0.0, root=None, day=DAY, **times):
    """A run requested at T0 + t, created 1 s later, queued 2 s, started 1 s after that,
    running 100 s (each overridable)."""
    fields = {
        "requested_at": T0 + t,
        "created_at": T0 + t + 1,
        "enqueued_at": T0 + t + 1,
        "dequeued_at": T0 + t + 3,
        "started_at": T0 + t + 4,
        "ended_at": T0 + t + 104,
    } | times
    return Attempt(
        run_id=run_id,
        job=job,
        partition=day,
        status=status,
        request_source="sensor tick",
        root_run_id=root or run_id,
        **fields,
    )


def test_request_time_prefers_the_schedule_then_the_sensor_tick_then_creation():
    scheduled = "2026-11-06T06:00:00+00:00"
    tick = "2026-11-06T06:00:30.500000+00:00"
    assert request_time({SCHEDULED_EXECUTION_TIME_TAG: scheduled}, 1.0) == (T0, "schedule")
    assert request_time({REQUESTED_AT_TAG: tick}, 1.0) == (T0 + 30.5, "sensor tick")
    assert request_time({}, 1.0) == (1.0, "run created")


def test_schedule_to_start_and_its_queue_part():
    chain = Chain((attempt("a", dequeued_at=T0 + 70, started_at=T0 + 72),))
    assert measures.schedule_to_start(chain, now=T0 + 999) == 72
    assert measures.queue_wait(chain) == 69  # enqueued at T0 + 1
    assert measures.duration(chain) == pytest.approx(T0 + 104 - (T0 + 72))


def test_a_run_still_queued_counts_its_wait_so_far():
    chain = Chain(
        (attempt("a", status="QUEUED", dequeued_at=None, started_at=None, ended_at=None),)
    )
    assert measures.schedule_to_start(chain, now=T0 + 90) == 90
    assert measures.queue_wait(chain) is None
    assert measures.duration(chain) is None


def test_retries_form_one_chain_whose_outcome_is_the_last_attempt():
    first = attempt("a", status="FAILURE")
    retry = attempt("b", root="a", t=200)
    other = attempt("c", job=FEATURES_JOB, t=-500)
    chains = chains_of([retry, first, other])
    assert [c.first.run_id for c in chains] == ["c", "a"]
    chain = chains[1]
    assert [a.run_id for a in chain.attempts] == ["a", "b"]
    assert chain.succeeded
    # Schedule-to-start is the original request's; duration spans both attempts.
    assert measures.schedule_to_start(chain, now=0) == 4
    assert measures.duration(chain) == pytest.approx(300)  # T0 + 4 to T0 + 304


def test_end_to_end_from_data_complete_to_the_promotion():
    features = Chain((attempt("f", job=FEATURES_JOB),))
    training = Chain((attempt("t", t=120),))
    result = measures.end_to_end([features, training], promoted_at={"t": T0 + 220})
    assert result.outcome == measures.PROMOTED
    assert result.seconds == pytest.approx(220)
    assert result.run_id == "t"


def test_end_to_end_to_the_run_that_stopped_the_day():
    features = Chain((attempt("f", job=FEATURES_JOB),))
    training = Chain((attempt("t", status="FAILURE", t=120),))
    result = measures.end_to_end([features, training], promoted_at={})
    assert result.outcome == measures.STOPPED
    assert result.seconds == pytest.approx(224)  # to the training run's end, T0 + 120 + 104
    assert result.run_id == "t"

    blocked = Chain((attempt("f2", job=FEATURES_JOB, status="FAILURE"),))
    result = measures.end_to_end([blocked], promoted_at={})
    assert (result.outcome, result.seconds, result.run_id) == (measures.STOPPED, 104, "f2")


def test_end_to_end_has_no_number_while_running_or_without_training():
    features = Chain((attempt("f", job=FEATURES_JOB),))
    running = Chain((attempt("t", status="STARTED", t=120, ended_at=None),))
    assert measures.end_to_end([features, running], {}).outcome == measures.RUNNING
    assert measures.end_to_end([features], {}).outcome == measures.NOT_TRAINED
    assert measures.end_to_end([features], {}).seconds is None
    assert measures.end_to_end([], {}).outcome == measures.NO_RUNS


def _days(*statuses_by_day):
    """{day: chains} for consecutive days ending at DAY, each a list of outcomes."""
    last = dt.date.fromisoformat(DAY)
    start = last - dt.timedelta(days=len(statuses_by_day) - 1)
    out = {}
    for offset, statuses in enumerate(statuses_by_day):
        day = (start + dt.timedelta(days=offset)).isoformat()
        out[day] = [
            Chain((attempt(f"{day}-{n}", status=status, day=day),))
            for n, status in enumerate(statuses)
        ]
    return out


def test_success_ratio_over_the_trailing_days_counts_finished_chains_only():
    chains = _days(["SUCCESS", "FAILURE"], ["SUCCESS", "SUCCESS"], ["SUCCESS", "STARTED"])
    ratio = measures.success_ratio(DAY, 7, chains)
    assert (ratio.succeeded, ratio.finished) == (4, 5)
    assert ratio.ratio == pytest.approx(0.8)
    assert ratio.failed_run_ids == ("2026-11-03-1",)
    # A one-day window sees only the day itself.
    assert measures.success_ratio(DAY, 1, chains).ratio == 1.0
    assert measures.success_ratio("2026-10-01", 7, chains).ratio is None


def test_a_breach_needs_every_day_of_the_streak_below_the_minimum():
    chains = _days(["FAILURE", "SUCCESS"], ["SUCCESS", "SUCCESS"], ["SUCCESS", "SUCCESS"])
    days = measures.trailing_days(DAY, 3)
    ratios = [measures.success_ratio(day, 7, chains) for day in days]
    assert [r.ratio for r in ratios] == [0.5, 0.75, pytest.approx(5 / 6)]
    assert measures.below_for_consecutive_days(ratios, 0.99)
    assert not measures.below_for_consecutive_days(ratios, 0.7)
    # A day of the streak without any finished run breaks it.
    earlier = [
        measures.success_ratio(day, 7, chains) for day in measures.trailing_days("2026-11-04", 3)
    ]
    assert earlier[0].ratio is None
    assert not measures.below_for_consecutive_days(earlier, 0.99)
