"""The registry tells its caller what happened: a move that committed is reported as committed,
history is a snapshot that never reports a false inconsistency, `expected` is checked before
any short-circuit, errors name the key and the versions, and no write fails on every move."""

import boto3
import pytest

from resources.registry.registry import (
    PRODUCTION,
    AliasContended,
    GarbledPointer,
    ModelRegistry,
    PromotionConflict,
    RegistryError,
    RetryPolicy,
    promote,
)
from resources.storage.object_store import LocalObjectStore, open_s3_store
from tests.support.registry import Fault, FaultyS3Client, FaultyStore, record

FAST = RetryPolicy(attempts=5, first_delay_s=0.0)


def _s3_store(endpoint, bucket, client=None):
    return open_s3_store(
        bucket, "ml", region="us-east-1", endpoint_url=endpoint,
        access_key="testing", secret_key="testing", client=client,
    )  # fmt: skip


def _seed(registry, *versions):
    for version in versions:
        registry.register(record(version))


def test_a_409_on_the_history_record_after_the_swap_is_not_reported_as_a_failure(
    s3_endpoint, s3_bucket
):
    """S3 answers 409 to the create-only history record (another conditional write in flight):
    the record is still absent. The swap has committed, so the promotion reports success and
    the record is written by a retry."""
    plain = ModelRegistry(_s3_store(s3_endpoint, s3_bucket), "ctr")
    _seed(plain, "v1", "v2")
    promote(plain, "v1", None, "first", "r1")
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    faulty = FaultyS3Client(client, Fault("history/00000002.json", "409"))
    registry = ModelRegistry(_s3_store(s3_endpoint, s3_bucket, faulty), "ctr", FAST)

    result = promote(registry, "v2", "v1", "v2 passed", "r2")

    assert faulty.fault.injected == 1
    assert result.moved and result.history_pending is None
    assert plain.resolve(PRODUCTION).version == "v2"
    stored = plain.store.list_keys(plain.history_prefix(PRODUCTION))
    assert [key.rsplit("/", 1)[-1] for key in stored] == ["00000001.json", "00000002.json"]
    assert plain.verify(PRODUCTION) == []


def test_history_read_while_the_alias_moves_twice_is_a_consistent_snapshot(tmp_path):
    store = FaultyStore(LocalObjectStore(tmp_path))
    registry = ModelRegistry(store, "ctr")
    versions = [f"v{i}" for i in range(1, 7)]
    _seed(registry, *versions)
    promote(registry, "v1", None, "first", "r1")
    promote(registry, "v2", "v1", "second", "r2")
    other = ModelRegistry(LocalObjectStore(tmp_path), "ctr")

    def two_moves_meanwhile():
        current = other.read_alias(PRODUCTION).version
        for version in versions[versions.index(current) + 1 :][:2]:
            promote(other, version, current, "a concurrent promotion", "other")
            current = version

    store.after_list = two_moves_meanwhile
    moves = registry.history(PRODUCTION)

    assert [m.sequence for m in moves] == list(range(1, len(moves) + 1))
    assert [m.to_version for m in moves] in (["v1", "v2"], ["v1", "v2", "v3", "v4"])
    store.after_list = two_moves_meanwhile  # verify() reads history the same way
    assert registry.verify(PRODUCTION) == []
    assert other.resolve(PRODUCTION).version == "v6"


def test_expected_is_checked_even_when_the_alias_already_names_the_target(tmp_path):
    registry = ModelRegistry(LocalObjectStore(tmp_path), "ctr")
    _seed(registry, "v1", "v2", "v3")
    promote(registry, "v1", None, "first", "r1")
    promote(registry, "v2", "v1", "second", "r2")
    promote(registry, "v3", "v2", "third", "r3")

    # Decided against v1, but production moved v1 -> v2 -> v3 by other decisions.
    with pytest.raises(PromotionConflict) as raised:
        promote(registry, "v3", "v1", "v3 beat v1", "r-late")
    assert (raised.value.expected, raised.value.observed) == ("v1", "v3")
    # The same call as the one that made move 3 (a retried run) is a recorded no-op.
    again = promote(registry, "v3", "v2", "third", "r3-retry")
    assert not again.moved and again.move.sequence == 3
    assert len(registry.history(PRODUCTION)) == 3


def test_exhausted_compare_and_swap_names_the_key_and_both_versions(tmp_path):
    store = FaultyStore(LocalObjectStore(tmp_path), Fault("pointer", "412", times=None))
    registry = ModelRegistry(store, "ctr", FAST)
    _seed(registry, "v1", "v2")
    store.fault = None
    promote(registry, "v1", None, "first", "r1")
    store.fault = Fault("pointer", "412", times=None)

    with pytest.raises(AliasContended) as raised:
        promote(registry, "v2", "v1", "v2 passed", "r2")

    message = str(raised.value)
    assert registry.alias_key(PRODUCTION) in message
    assert "from 'v1' to 'v2'" in message
    assert "expected to name 'v1' but names 'v1'" not in message
    assert registry.resolve(PRODUCTION).version == "v1"


def test_a_garbled_pointer_is_a_registry_error_naming_the_key_and_the_repair(tmp_path):
    registry = ModelRegistry(LocalObjectStore(tmp_path), "ctr")
    _seed(registry, "v1", "v2")
    promote(registry, "v1", None, "first", "r1")
    promote(registry, "v2", "v1", "second", "r2")
    key = registry.alias_key(PRODUCTION)
    whole = registry.store.get_bytes(key)
    registry.store.put_bytes(key, whole[: len(whole) // 2])  # truncated

    for read in (registry.read_alias, registry.resolve, registry.history):
        with pytest.raises(GarbledPointer) as raised:
            read(PRODUCTION)
        assert isinstance(raised.value, RegistryError)
        assert key in str(raised.value) and "restore_pointer" in str(raised.value)
    with pytest.raises(GarbledPointer):
        promote(registry, "v1", "v2", "roll back", "r3")

    restored = registry.restore_pointer(PRODUCTION, why="pointer truncated by hand")
    assert (restored.version, restored.move.sequence) == ("v2", 2)
    assert registry.verify(PRODUCTION) == []
    assert promote(registry, "v1", "v2", "after the repair", "r3").move.sequence == 3


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_no_write_is_refused_in_a_run_of_promotions(backend, request, tmp_path):
    if backend == "local":
        inner = LocalObjectStore(tmp_path)
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        inner = _s3_store(endpoint, request.getfixturevalue("s3_bucket"))
    store = FaultyStore(inner)
    registry = ModelRegistry(store, "ctr")
    versions = [f"v{i}" for i in range(1, 6)]
    _seed(registry, *versions)
    store.writes.clear()

    previous = None
    for version in versions:
        assert promote(registry, version, previous, f"{version} passed", "run").moved
        previous = version

    assert store.refused == []
    # One pointer write and one history record per move; nothing re-written.
    assert store.writes.count("pointer") == len(versions)
    assert len([w for w in store.writes if w.startswith("history/")]) == len(versions)
