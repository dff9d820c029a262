"""Every write a promotion and a rollback make, failed at the store boundary, before and after
the commit point (the pointer swap), on the local store and through the boto3 client of the S3
store (moto's S3 on loopback, benchmarks/loopback_s3.py): what the caller is told, what
serving resolves, and that the next call converges to a gap-free history.

Faults: 412 (refused), 409 (S3 ConditionalRequestConflict: not applied), a timeout, a
connection reset, and the process dying (`Killed`, a BaseException nothing catches). Each is
injected with the write not applied, or applied with its answer lost (`after`: what a client
retry of a landed conditional write, or a response lost on the wire, looks like), once, or on
every attempt (`always`: the store stays down). What moto can and cannot show: the loopback
server applies one request at a time, so these tests show the client's handling of each
answer, not S3's atomicity (see docs/registry.md).

Setup: v1..v5 registered, production v1 -> v2 (moves 1, 2). A promotion registers v4 and
moves v2 -> v4; a rollback moves v2 -> v1. `history_repair`: record 2 is missing first (a
crash after move 2's swap), so the move writes it before its own swap.
"""

import boto3
import pytest

from resources.registry.registry import (
    PRODUCTION,
    AliasContended,
    ModelRegistry,
    MoveFailed,
    RegistryError,
    RetryPolicy,
    promote,
)
from resources.storage.object_store import LocalObjectStore, open_s3_store
from tests.support.registry import Fault, FaultyS3Client, FaultyStore, Killed, record

FAST = RetryPolicy(attempts=4, first_delay_s=0.0)
ERRORS = ["412", "409", "timeout", "reset", "kill"]
WRITES = {
    "promote": ["version_record", "pointer", "history", "history_repair"],
    "rollback": ["pointer", "history", "history_repair"],
}
TARGET = {"promote": "v4", "rollback": "v1"}
FAULT_KEY = {
    "version_record": "version_record",
    "pointer": "pointer",
    "history": "history/00000003.json",
    "history_repair": "history/00000002.json",
}


def _cases():
    for operation, writes in WRITES.items():
        for write in writes:
            for error in ERRORS:
                for applied in (False, True):
                    yield operation, write, error, applied, 1
                if error != "kill":
                    yield operation, write, error, False, None


CASES = [
    pytest.param(*case, id=f"{case[0]}-{case[1]}-{case[2]}-{'after' if case[3] else 'before'}"
                 f"-{'once' if case[4] else 'always'}")
    for case in _cases()
]  # fmt: skip


class Harness:
    """A registry whose writes go through the fault, and a plain one for checking."""

    def __init__(self, backend, request, tmp_path):
        if backend == "local":
            self.faulty_store = FaultyStore(LocalObjectStore(tmp_path))
            store, self.plain = self.faulty_store, ModelRegistry(LocalObjectStore(tmp_path), "ctr")
        else:
            endpoint = request.getfixturevalue("s3_endpoint")
            bucket = request.getfixturevalue("s3_bucket")
            client = boto3.client(
                "s3", endpoint_url=endpoint, region_name="us-east-1",
                aws_access_key_id="testing", aws_secret_access_key="testing",
            )  # fmt: skip
            self.faulty_client = FaultyS3Client(client)
            store = _s3(endpoint, bucket, self.faulty_client)
            self.plain = ModelRegistry(_s3(endpoint, bucket), "ctr")
        self.registry = ModelRegistry(store, "ctr", FAST)
        self.backend = backend

    def inject(self, fault: Fault | None) -> None:
        if self.backend == "local":
            self.faulty_store.fault = fault
        else:
            self.faulty_client.fault = fault


def _s3(endpoint, bucket, client=None):
    return open_s3_store(
        bucket, "ml", region="us-east-1", endpoint_url=endpoint,
        access_key="testing", secret_key="testing", client=client,
    )  # fmt: skip


def _operation(registry, operation):
    if operation == "promote":
        registry.register(record("v4", run_id="r4"))
        return promote(registry, "v4", "v2", "v4 passed against v2", "r4")
    return registry.rollback(PRODUCTION, expected="v2", why="v2 drops clicks", run_id="rb")


def _expected(write, error, applied, times):
    """(what the caller is told, whether the move committed)."""
    if error == "kill":  # committed once the pointer write has landed
        return Killed, write == "history" or (write == "pointer" and applied)
    if times is None and not applied:
        if write == "pointer":
            return (AliasContended if error in ("412", "409") else MoveFailed), False
        if write == "history_repair":
            return MoveFailed, False
        if write == "version_record":
            return RegistryError, False
        return "committed, history pending", True
    return "committed", True


# Through the S3 client: the writes whose answers reach the registry through S3ObjectStore's
# mapping of botocore errors (the record and the repair use the same create-only call as the
# history record); slow, as each case seeds a bucket over HTTP.
S3_CASES = [
    pytest.param(*case.values, id=case.id, marks=pytest.mark.slow)
    for case in CASES
    if case.values[1] in ("pointer", "history")
]


@pytest.mark.parametrize(
    ("backend", "operation", "write", "error", "applied", "times"),
    [pytest.param("local", *case.values, id=f"local-{case.id}") for case in CASES]
    + [pytest.param("s3", *case.values, id=f"s3-{case.id}", marks=case.marks) for case in S3_CASES],
)
def test_a_failed_write_is_reported_truthfully_and_the_next_call_converges(
    backend, operation, write, error, applied, times, request, tmp_path
):
    harness = Harness(backend, request, tmp_path)
    plain = harness.plain
    for version in ("v1", "v2", "v3", "v5"):
        plain.register(record(version))
    promote(plain, "v1", None, "day 1", "r1")
    promote(plain, "v2", "v1", "day 2", "r2")
    if write == "history_repair":
        plain.store.delete(plain.history_key(PRODUCTION, 2))
    target = TARGET[operation]
    told, committed = _expected(write, error, applied, times)

    fault = Fault(FAULT_KEY[write], error, applied=applied, times=times)
    harness.inject(fault)
    if isinstance(told, type):
        with pytest.raises(told) as raised:
            _operation(harness.registry, operation)
        if told is not Killed:  # the error names the key and the versions
            message = str(raised.value)
            assert plain.store.uri(plain.prefix) in message
            assert ("'v4'" if write == "version_record" else "'v2'") in message
    else:
        result = _operation(harness.registry, operation)
        assert result.moved and result.move.to_version == target
        assert (result.history_pending is not None) == (told == "committed, history pending")
    harness.inject(None)
    assert fault.injected >= 1

    # What serving resolves, and a history that agrees with it (taken from the pointer where
    # the record is not written yet).
    serving = plain.resolve(PRODUCTION).version
    assert serving == (target if committed else "v2")
    assert plain.history(PRODUCTION)[-1].to_version == serving
    assert plain.verify(PRODUCTION) == []

    # The next call converges: a failed call re-run reports the move (made now, or made
    # before the failure); then the next promotion leaves every record stored, no gap.
    if isinstance(told, type):
        again = _operation(harness.registry, operation)
        assert again.move.to_version == target and again.moved == (not committed)
    promote(harness.registry, "v5", target, "next day", "r5")
    moves = plain.history(PRODUCTION)
    assert [m.to_version for m in moves] == ["v1", "v2", target, "v5"]
    stored = plain.store.list_keys(plain.history_prefix(PRODUCTION))
    assert len(stored) == len(moves) == 4
    assert plain.verify(PRODUCTION) == []
