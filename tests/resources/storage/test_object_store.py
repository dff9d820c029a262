"""Both storage backends honour one contract: atomic writes, safe keys, listing, deletes."""

import boto3
import pytest

from resources.storage.object_store import (
    InvalidObjectKey,
    LocalObjectStore,
    ObjectNotFound,
    S3ObjectStore,
    arrow_s3_filesystem,
    validate_object_key,
)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, s3_bucket, s3_endpoint):
    if request.param == "local":
        return LocalObjectStore(tmp_path / "store")
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    filesystem = arrow_s3_filesystem(
        region="us-east-1", endpoint_url=s3_endpoint, access_key="testing", secret_key="testing"
    )
    return S3ObjectStore(client, filesystem, s3_bucket, prefix="team/project")


def test_put_get_overwrite_list_delete(store):
    first = store.put_bytes("features/a/2026-11-01.parquet", b"one")
    store.put_bytes("features/a/2026-11-02.parquet", b"two")
    assert store.get_bytes("features/a/2026-11-01.parquet") == b"one"
    assert first.size == 3 and len(first.sha256) == 64

    store.put_bytes("features/a/2026-11-01.parquet", b"replaced")
    assert store.get_bytes("features/a/2026-11-01.parquet") == b"replaced"
    assert store.list_keys("features/a") == [
        "features/a/2026-11-01.parquet",
        "features/a/2026-11-02.parquet",
    ]
    assert store.exists("features/a/2026-11-02.parquet")

    store.delete("features/a/2026-11-02.parquet")
    assert not store.exists("features/a/2026-11-02.parquet")
    with pytest.raises(ObjectNotFound, match="2026-11-02"):
        store.get_bytes("features/a/2026-11-02.parquet")


def test_arrow_location_streams_the_same_bytes(store):
    store.put_bytes("blobs/x.bin", b"payload")
    filesystem, path = store.arrow_location("blobs/x.bin")
    with filesystem.open_input_stream(path) as stream:
        assert stream.read() == b"payload"


@pytest.mark.parametrize(
    "key", ["../x", "a/../../x", "/etc/passwd", "a//b", "", ".hidden", "a/./b", "a\\b", "a b"]
)
def test_unsafe_keys_are_refused_before_any_io(store, key):
    with pytest.raises(InvalidObjectKey, match="not a relative path"):
        store.put_bytes(key, b"x")
    with pytest.raises(InvalidObjectKey):
        store.get_bytes(key)


def test_local_write_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    store = LocalObjectStore(tmp_path)
    store.put_bytes("k/obj.bin", b"good")

    def crash_mid_write(*_args, **_kwargs):
        raise OSError("disk full")

    # A write that fails before the rename must leave the previous object intact.
    monkeypatch.setattr("resources.storage.object_store.os.replace", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        store.put_bytes("k/obj.bin", b"half-written")
    monkeypatch.undo()
    assert store.get_bytes("k/obj.bin") == b"good"
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["obj.bin"]


def test_validate_object_key_accepts_plain_paths():
    assert validate_object_key("features/user_daily_features/2026-11-01.parquet")
