"""Who gives up the GPU: the decision of gpu_preemption_sensor, apart from the daemon."""

import dagster as dg
import pytest

from resources.storage.object_store import LocalObjectStore
from resources.trainer.preemption import (
    clear_request,
    pending_requests,
    read_request,
    request_key,
    request_preemption,
)
from sensors.gpu_preemption import SlotHolder, plan_preemptions
from sensors.schedules import DAILY_RUN_TAGS, is_daily_run


def holder(run_id, backfill=True, preemptions=0, created=0.0):
    return SlotHolder(run_id, is_backfill=backfill, preemptions=preemptions, created=created)


def test_the_newest_backfill_holder_yields_to_a_waiting_daily_run():
    holders = [holder("old", created=1.0), holder("new", created=2.0)]
    [preemption] = plan_preemptions(["daily"], holders, requested=set(), max_preemptions=2)
    assert (preemption.victim_run_id, preemption.for_run_id) == ("new", "daily")


def test_a_daily_holder_is_never_preempted():
    holders = [holder("other-daily", backfill=False)]
    assert plan_preemptions(["daily"], holders, requested=set(), max_preemptions=2) == []


def test_a_backfill_run_at_its_limit_keeps_its_slot():
    holders = [holder("tired", preemptions=2, created=5.0), holder("fresh", created=1.0)]
    [preemption] = plan_preemptions(["daily"], holders, requested=set(), max_preemptions=2)
    assert preemption.victim_run_id == "fresh"
    assert plan_preemptions(["daily"], holders[:1], set(), max_preemptions=2) == []


def test_zero_switches_preemption_off():
    assert plan_preemptions(["daily"], [holder("b")], set(), max_preemptions=0) == []


def test_a_request_on_its_way_is_not_doubled():
    holders = [holder("asked", created=2.0), holder("spare", created=1.0)]
    assert plan_preemptions(["daily"], holders, requested={"asked"}, max_preemptions=2) == []
    # A second daily run waiting needs a second slot.
    [second] = plan_preemptions(["d1", "d2"], holders, requested={"asked"}, max_preemptions=2)
    assert (second.victim_run_id, second.for_run_id) == ("spare", "d2")


def test_only_untagged_daily_priority_runs_count_as_daily():
    def run(tags):
        return dg.DagsterRun(job_name="daily_training_job", run_id="r", tags=tags)

    assert is_daily_run(run(DAILY_RUN_TAGS))
    assert not is_daily_run(run({**DAILY_RUN_TAGS, "dagster/backfill": "abc"}))
    assert not is_daily_run(run({}))


def test_requests_round_trip_through_the_store(tmp_path):
    store = LocalObjectStore(tmp_path)
    run_id = "0b6b1c1e-3f7a-4b55-9a0e-1d2c3b4a5f60"
    request_preemption(store, run_id, "daily-run", reason="daily run waits")
    assert pending_requests(store) == {run_id}
    request = read_request(store, run_id)
    assert (request.victim_run_id, request.for_run_id) == (run_id, "daily-run")
    clear_request(store, run_id)
    assert read_request(store, run_id) is None and pending_requests(store) == set()


def test_a_run_id_that_is_not_one_never_becomes_a_path():
    with pytest.raises(ValueError, match="not a Dagster run id"):
        request_key("../../etc/passwd")
