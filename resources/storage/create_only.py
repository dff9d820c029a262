"""Create-only writes whose refusal is settled by reading the key, never assumed.

A refused `put_if_absent` means one of two things. A 412 (`PreconditionFailed`): the key
exists, perhaps written by an earlier attempt of this very write whose answer was lost. S3's
409 (`ConditionalWriteConflict`): another conditional write to the key was in flight and this
one was not applied, so the key may still be absent; if the other write fails too, taking the
409 for "it exists" loses both. `create_or_read` reads the key after every refusal and sends
the write again while it is absent, so its caller decides from what is stored.
"""

from __future__ import annotations

import time

from resources.storage.object_store import (
    ConditionalObjectStore,
    ConditionalWriteConflict,
    ObjectNotFound,
    PreconditionFailed,
)

ATTEMPTS = 6
FIRST_DELAY_S = 0.05


def create_or_read(
    store: ConditionalObjectStore,
    key: str,
    data: bytes,
    *,
    attempts: int = ATTEMPTS,
    first_delay_s: float = FIRST_DELAY_S,
) -> bytes | None:
    """Create `key` holding `data` unless an object is there. None: this call created it.
    Otherwise the bytes stored at `key`: another writer's, or `data` itself when an earlier
    attempt of this write landed; the caller decides what they mean.

    A refusal with the key absent (a 409 not applied, or the object deleted in between) sends
    the write again, with backoff, at most `attempts` times in all; then the last refusal is
    raised as ConditionalWriteConflict naming the key.
    """
    for attempt in range(attempts):
        try:
            store.put_if_absent(key, data)
            return None
        except PreconditionFailed as refused:
            try:
                return store.get_bytes(key)
            except ObjectNotFound:
                last = refused
        if attempt + 1 < attempts:
            time.sleep(first_delay_s * 2**attempt)
    raise ConditionalWriteConflict(
        f"{store.uri(key)}: create-only write refused {attempts} times while the key stayed "
        f"absent (last: {last}); concurrent conditional writes kept conflicting. Nothing was "
        "written by this call: run it again.",
        key=key,
    ) from last
