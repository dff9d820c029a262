"""A promotion that SIGKILLs its own process at one step (run by test_kill_safety.py).

    python -m tests.resources.registry.promote_and_die SPEC_JSON KILL_AT

KILL_AT: `version_record` (after the record is created), `inside_pointer_cas` (local only:
the new pointer is written to a temp file, the key's lock is held, the rename has not
happened), `pointer` (after the CAS), `history` (after the new history record).
"""

import json
import os
import signal
import sys

from benchmarks.promotion_race import StoreSpec
from resources.registry.registry import ModelRegistry, promote
from tests.support.registry import record


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class DyingStore:
    """Delegates to the real store; SIGKILLs the process right after the chosen write."""

    def __init__(self, store, kill_at: str):
        self._store, self._kill_at = store, kill_at

    def __getattr__(self, name):
        return getattr(self._store, name)

    def put_if_absent(self, key, data):
        stored = self._store.put_if_absent(key, data)
        if self._kill_at == "version_record" and "/versions/" in key:
            die()
        if self._kill_at == "history" and key.endswith("/00000002.json"):
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
    registry = ModelRegistry(DyingStore(spec.open(), kill_at), "ctr")
    print("started", flush=True)
    registry.register(record("v2", run_id="dying-run"))
    promote(registry, "v2", "v1", "candidate v2 beat v1", "dying-run")
    print("promoted without being killed", flush=True)


if __name__ == "__main__":
    main()
