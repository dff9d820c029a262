"""The run tags that say when a run was asked for: schedule-to-start is measured from there."""

import datetime as dt

# Set by the sensors that request daily runs (the completeness sensor, the training trigger):
# the time of the tick that asked for the run. A run record's creation time is later than the
# tick (the daemon submits a tick's requests after evaluating it), and for a scheduled run the
# schedule's own tag below says when it was due.
REQUESTED_AT_TAG = "ml-template/requested_at"
SCHEDULED_EXECUTION_TIME_TAG = ".dagster/scheduled_execution_time"


def requested_at_tags(now: dt.datetime | None = None) -> dict[str, str]:
    """Tags for a run request made now (ISO 8601, UTC)."""
    moment = now or dt.datetime.now(dt.UTC)
    return {REQUESTED_AT_TAG: moment.astimezone(dt.UTC).isoformat()}


def request_time(tags: dict[str, str], created: float) -> tuple[float, str]:
    """When the run was asked for, and by what: the schedule's due time, the requesting
    sensor tick, or (launched by hand, or by a trigger that sets neither) its creation."""
    if SCHEDULED_EXECUTION_TIME_TAG in tags:
        return dt.datetime.fromisoformat(tags[SCHEDULED_EXECUTION_TIME_TAG]).timestamp(), "schedule"
    if REQUESTED_AT_TAG in tags:
        return dt.datetime.fromisoformat(tags[REQUESTED_AT_TAG]).timestamp(), "sensor tick"
    return created, "run created"
