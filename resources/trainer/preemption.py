"""Checkpoint-aware preemption, the request side (Dagster-free: the Pipes bridge imports it).

A preemption is one small object in the run's object store, `preemptions/<run id>.json`,
written by `sensors/gpu_preemption.py` and watched by the bridge that runs that run's trainer.
The bridge answers it with SIGTERM, which the trainer already treats as a spot reclaim: save a
checkpoint at the next step boundary, exit 143. The object store is the channel because it is
the one thing the sensor (daemon side) and the trainer (a subprocess here, a pod on
Kubernetes) both reach, with no process ids or pod names crossing machines.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from resources.storage.object_store import ObjectNotFound, ObjectStore

PREFIX = "preemptions"
# Run tag counting how often a run was preempted (the policy's limit reads it).
PREEMPTIONS_TAG = "ml-template/preemptions"
# How often the bridge looks for a request: one cheap existence check (a stat, or an S3 HEAD).
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class PreemptionRequest:
    """Run `victim_run_id` gives its GPU slot to `for_run_id` (a waiting daily run)."""

    victim_run_id: str
    for_run_id: str
    requested_at: float
    reason: str


def request_key(run_id: str) -> str:
    if not run_id.replace("-", "").isalnum():
        raise ValueError(f"not a Dagster run id: {run_id!r}")
    return f"{PREFIX}/{run_id}.json"


def request_preemption(
    store: ObjectStore, victim_run_id: str, for_run_id: str, reason: str
) -> None:
    request = PreemptionRequest(victim_run_id, for_run_id, time.time(), reason)
    store.put_bytes(request_key(victim_run_id), json.dumps(asdict(request)).encode())


def read_request(store: ObjectStore, run_id: str) -> PreemptionRequest | None:
    try:
        return PreemptionRequest(**json.loads(store.get_bytes(request_key(run_id))))
    except ObjectNotFound:
        return None


def clear_request(store: ObjectStore, run_id: str) -> None:
    store.delete(request_key(run_id))


def pending_requests(store: ObjectStore) -> set[str]:
    """Run ids with a request not yet answered (the run has not handled it)."""
    return {key.rsplit("/", 1)[-1].removesuffix(".json") for key in store.list_keys(PREFIX)}
