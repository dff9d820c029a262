"""A promotion or a rollback that SIGKILLs its own process at one step (run by
test_kill_safety.py).

    python -m tests.resources.registry.promote_and_die SPEC_JSON KILL_AT [promote|rollback]

KILL_AT: `version_record` (after the record is created), `inside_pointer_cas` (local only:
the new pointer is written to a temp file, the key's lock is held, the rename has not
happened), `pointer` (after the CAS), `history` (after the new history record).
A promotion moves production v1 -> v2 (move 2); a rollback moves it v2 -> v1 (move 3).
"""

import json
import os
import signal
import sys

from benchmarks.promotion_race import StoreSpec
from resources.registry.registry import PRODUCTION, ModelRegistry, promote
from tests.support.registry import record


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class DyingStore:
    """Delegates to the real store; SIGKILLs the process right after the chosen write."""

    def __init__(self, store, kill_at: str, new_record: str):
        self._store, self._kill_at, self._new_record = store, kill_at, new_record

    def __getattr__(self, name):
        return getattr(self._store, name)

    def put_if_absent(self, key, data):
        stored = self._store.put_if_absent(key, data)
        if self._kill_at == "version_record" and "/versions/" in key:
            die()
        if self._kill_at == "history" and key.endswith(self._new_record):
            die()
        return stored

    def put_if_version(self, key, data, version):
        if self._kill_at == "inside_pointer_cas":
            real_replace = os.replace

            def replace_then_die(src, dst):
                if str(dst).endswith("production.json"):
                    die()
                real_replace(src, dst)

            os.replace = replace_then_die
        stored = self._store.put_if_version(key, data, version)
        if self._kill_at == "pointer" and "/aliases/" in key:
            die()
        return stored


def main() -> None:
    spec, kill_at = StoreSpec(**json.loads(sys.argv[1])), sys.argv[2]
    operation = sys.argv[3] if len(sys.argv) > 3 else "promote"
    new_record = "/00000002.json" if operation == "promote" else "/00000003.json"
    registry = ModelRegistry(DyingStore(spec.open(), kill_at, new_record), "ctr")
    print("started", flush=True)
    if operation == "promote":
        registry.register(record("v2", run_id="dying-run"))
        promote(registry, "v2", "v1", "candidate v2 beat v1", "dying-run")
    else:
        registry.rollback(PRODUCTION, expected="v2", why="v2 misbehaves", run_id="dying-run")
    print("promoted without being killed", flush=True)


if __name__ == "__main__":
    main()
