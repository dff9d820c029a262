"""Retention and overlapping publishes: the pointer moves by compare-and-swap, a publish that
loses the swap re-decides and deletes nothing, and versions no pointer names are collected by
the next publish of the day, never the one the pointer names."""

from collections.abc import Callable

import pyarrow as pa
import pytest

from assets.partitions import daily_partitions
from assets.publishing.gate_reports import read_approval, read_published, version_key
from assets.publishing.parquet import to_parquet_bytes
from assets.publishing.write_audit_publish import Evaluation, PublishPolicy, publish_if_passed
from resources.storage.object_store import LocalObjectStore, open_s3_store
from tests.assets.publishing.test_crash_safety import _publish_in_child

DAY = "2026-11-05"
ASSET = "user_daily_features"
PREFIX = f"features/{ASSET}/{DAY}"


def _table(rows: int) -> pa.Table:
    return pa.table({"user_id": list(range(rows))})


def _key(rows: int) -> str:
    sha = to_parquet_bytes(_table(rows)).sha256
    return version_key(ASSET, DAY, daily_partitions, "features", sha)


def _publish(store, rows: int, keep: int = 2):
    evaluation = Evaluation(_table(rows), [])
    return publish_if_passed(
        store, ASSET, "features", DAY, evaluation, policy=PublishPolicy(keep_versions=keep)
    )


def _named(store) -> list[str]:
    pointer = read_approval(store, ASSET, DAY, daily_partitions)
    return sorted([pointer.object_key, *pointer.superseded])


def _assert_pointer_intact(store, rows: int) -> None:
    """The pointer names `rows`' version, and every version it names exists, byte-exact."""
    data, _ = read_published(store, ASSET, DAY, daily_partitions)
    assert data == to_parquet_bytes(_table(rows)).data
    for key in _named(store):
        assert store.exists(key), key


class InterleavingStore:
    """The same store, running `interleave` once just before (or just after) its next pointer
    swap: another publish of the same day that overlaps this one."""

    def __init__(self, store, when: str, interleave: Callable[[], None]):
        self.store, self.when, self.interleave = store, when, interleave

    def __getattr__(self, name):
        return getattr(self.store, name)

    def _once(self, when: str) -> None:
        if self.interleave and self.when == when:
            interleave, self.interleave = self.interleave, None
            interleave()

    def put_if_version(self, key, data, version):
        self._once("before_swap")
        stored = self.store.put_if_version(key, data, version)
        self._once("after_swap")
        return stored


@pytest.fixture(params=["local", "s3"])
def plain(request, tmp_path):
    """The object store, on local disk or on S3 (moto on loopback: ETags, IfMatch)."""
    if request.param == "local":
        return LocalObjectStore(tmp_path)
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return open_s3_store(bucket, "retention", region="us-east-1", endpoint_url=endpoint)


def test_a_version_orphaned_by_a_killed_publish_is_collected_by_the_next_one(tmp_path):
    store = LocalObjectStore(tmp_path)
    _publish(store, 10)
    _publish(store, 11)
    # Killed on entering the pointer's swap: version 12 and its report are written, the
    # pointer never moved, so no pointer names version 12.
    killed = _publish_in_child(tmp_path, kill_at=3, where="before", keep=2, rows=12)
    assert killed.returncode != 0
    assert store.exists(_key(12)) and _key(12) not in _named(store)
    _assert_pointer_intact(store, 11)

    _publish(store, 13)
    _assert_pointer_intact(store, 13)
    # Retention kept the current version and the one before; the orphan is gone with the
    # version beyond retention.
    assert _named(store) == sorted([_key(13), _key(11)])
    assert sorted(store.list_keys(PREFIX)) == _named(store)


def test_an_orphan_with_the_new_content_becomes_the_approved_version(tmp_path):
    store = LocalObjectStore(tmp_path)
    _publish(store, 10)
    store.put_bytes(_key(12), to_parquet_bytes(_table(12)).data)  # written, never approved
    _publish(store, 12)
    _assert_pointer_intact(store, 12)
    assert sorted(store.list_keys(PREFIX)) == _named(store) == sorted([_key(12), _key(10)])


def test_a_first_publish_killed_before_its_pointer_leaves_an_orphan_the_retry_collects(
    tmp_path,
):
    store = LocalObjectStore(tmp_path)
    store.put_bytes(_key(9), to_parquet_bytes(_table(9)).data)  # a first publish that died
    _publish(store, 10, keep=1)
    _assert_pointer_intact(store, 10)
    assert store.list_keys(PREFIX) == [_key(10)]


def test_a_publish_that_loses_the_swap_re_decides_and_deletes_nothing(plain):
    """B publishes between A's object write and A's swap. B's retention lists A's version
    as unreferenced and collects it; A's swap then conflicts, A re-reads B's pointer, writes
    its version again and swaps on top of B's, keeping B's version as the one before."""
    _publish(plain, 10)
    _publish(plain, 11)
    a = InterleavingStore(plain, "before_swap", lambda: _publish(plain, 13))

    _publish(a, 12)

    pointer = read_approval(plain, ASSET, DAY, daily_partitions)
    assert pointer.object_key == _key(12) and pointer.superseded == [_key(13)]
    _assert_pointer_intact(plain, 12)
    # A deleted nothing after its conflict: what B's retention kept is still there.
    assert plain.exists(_key(11))
    # The next uncontended publish collects every version its pointer does not name.
    _publish(plain, 14)
    _assert_pointer_intact(plain, 14)
    assert sorted(plain.list_keys(PREFIX)) == _named(plain) == sorted([_key(14), _key(12)])


def test_retention_never_deletes_a_version_that_a_later_pointer_names(plain):
    """A's swap wins; before A's retention runs, B republishes the content of A's oldest
    version (same key) on top of A's pointer. With a plain pointer write and A's deletions
    decided from the pointer A read, A deleted the version B's pointer names; now A sees the
    pointer moved and skips its deletions."""
    _publish(plain, 10)
    _publish(plain, 11)  # pointer: 11, keeping 10
    a = InterleavingStore(plain, "after_swap", lambda: _publish(plain, 10))

    _publish(a, 12)  # from the pointer it read, retention would drop 10

    pointer = read_approval(plain, ASSET, DAY, daily_partitions)
    assert pointer.object_key == _key(10) and pointer.superseded == [_key(12)]
    _assert_pointer_intact(plain, 10)


def test_overlapping_publishes_of_one_content_end_with_its_single_version(plain):
    _publish(plain, 10)
    a = InterleavingStore(plain, "before_swap", lambda: _publish(plain, 12))
    _publish(a, 12)
    _assert_pointer_intact(plain, 12)
    assert read_approval(plain, ASSET, DAY, daily_partitions).superseded == [_key(10)]
    assert sorted(plain.list_keys(PREFIX)) == sorted([_key(12), _key(10)])
