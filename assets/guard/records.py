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

import contextlib
import json

from assets.partitions import training_partitions
from assets.publishing.keys import partition_object_key
from resources.storage.object_store import ObjectNotFound, ObjectStore, PreconditionFailed

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
    """(the day's verdict, True if this call wrote it): the first verdict of a day stays."""
    key = verdict_key(verdict["partition"])
    try:
        store.put_if_absent(key, json.dumps(verdict, sort_keys=True, indent=1).encode())  # type: ignore[attr-defined]
        return verdict, True
    except PreconditionFailed:
        stored = _read(store, key)
        if stored is None:  # deleted in between: an operator wants it decided again
            return claim_verdict(store, verdict)
        return stored, False


def read_verdict(store: ObjectStore, partition: str) -> dict | None:
    return _read(store, verdict_key(partition))


def record_rollback(store: ObjectStore, partition: str, rollback: dict) -> None:
    with contextlib.suppress(PreconditionFailed):  # recorded by an earlier attempt
        store.put_if_absent(  # type: ignore[attr-defined]
            rollback_key(partition), json.dumps(rollback, sort_keys=True).encode()
        )


def read_rollback(store: ObjectStore, partition: str) -> dict | None:
    return _read(store, rollback_key(partition))
