"""What the guard leaves in object storage, one set per judged day:

- `guard/verdicts/<D>.json`: the day's verdict (the versions judged, every metric, the
  interval, the decision), written create-only before anything acts on it: the first run
  that decides claims it, a re-run (or a run racing it) reads that decision back and never
  decides again;
- `guard/verdicts/<D>.rollback.json`: written after the rollback moved the alias (create-only),
  so a re-run does not act again even if production was later moved back by hand;
- `guard/alerts/<D>/next_day_regression.json`: the alert marker (assets/slo/alerts.py).
"""

from __future__ import annotations

import json

from assets.partitions import training_partitions
from assets.publishing.keys import partition_object_key
from resources.storage.create_only import create_or_read
from resources.storage.object_store import ObjectNotFound, ObjectStore

GUARD_ASSET = "model_next_day_guard"
ALERTS_PREFIX = "guard/alerts"


def verdict_key(partition: str) -> str:
    return partition_object_key(
        "verdicts", partition, training_partitions, layer="guard", suffix="json"
    )


def rollback_key(partition: str) -> str:
    return verdict_key(partition).removesuffix(".json") + ".rollback.json"


def _read(store: ObjectStore, key: str) -> dict | None:
    try:
        return json.loads(store.get_bytes(key))
    except ObjectNotFound:
        return None


def claim_verdict(store: ObjectStore, verdict: dict) -> tuple[dict, bool]:
    """(the day's verdict, True if this call wrote it): the first verdict of a day stays.

    A refused claim is settled by reading the key (`create_or_read`): absent (S3's 409, not
    applied; or deleted in between because an operator wants it decided again) it is claimed
    again; these very bytes (they name this run) are an earlier attempt of this claim that
    landed with its answer lost."""
    data = json.dumps(verdict, sort_keys=True, indent=1).encode()
    stored = create_or_read(store, verdict_key(verdict["partition"]), data)  # type: ignore[arg-type]
    if stored is None or stored == data:
        return verdict, True
    return json.loads(stored), False


def read_verdict(store: ObjectStore, partition: str) -> dict | None:
    return _read(store, verdict_key(partition))


def record_rollback(store: ObjectStore, partition: str, rollback: dict) -> None:
    """Create-only; a record already there was written by an earlier attempt. A 409 (not
    applied) is sent again, never taken for "recorded"."""
    data = json.dumps(rollback, sort_keys=True).encode()
    create_or_read(store, rollback_key(partition), data)  # type: ignore[arg-type]


def read_rollback(store: ObjectStore, partition: str) -> dict | None:
    return _read(store, rollback_key(partition))
