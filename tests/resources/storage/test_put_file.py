"""Storing a file streams it: both stores report the size and sha256 of what they stored, and
S3 sends a file above the multipart threshold in parts (moto's S3 server on loopback)."""

import hashlib
import os
from collections import Counter
from pathlib import Path

import pytest

from resources.storage.object_store import (
    S3ObjectStore,
    arrow_s3_filesystem,
    open_s3_store,
)
from tests.support.s3 import local_or_s3_store, loopback_client

MiB = 1 << 20


def small_part_store(client, endpoint: str, bucket: str) -> S3ObjectStore:
    """Multipart above 5 MiB in 5 MiB parts (S3's smallest), so a test file of a few MiB is
    split in parts."""
    filesystem = arrow_s3_filesystem(
        region="us-east-1", endpoint_url=endpoint, access_key="testing", secret_key="testing"
    )
    return S3ObjectStore(
        client,
        filesystem,
        bucket,
        prefix="team",
        multipart_threshold=5 * MiB,
        multipart_chunksize=5 * MiB,
    )


def count_s3_calls(client) -> Counter:
    """The S3 operations the client sends from now on, by name (botocore's event hooks)."""
    calls: Counter = Counter()
    for operation in (
        "PutObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
    ):

        def count(operation=operation, **_):
            calls[operation] += 1

        client.meta.events.register(f"before-call.s3.{operation}", count)
    return calls


def random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    return local_or_s3_store(request, tmp_path, "team")


def test_put_file_round_trip_reports_what_was_stored(store, tmp_path):
    data = random_file(tmp_path / "day.parquet", 3 * MiB + 17)  # not a whole number of chunks
    store.put_bytes("features/a/2026-11-01.parquet", b"previous")

    stored = store.put_file("features/a/2026-11-01.parquet", tmp_path / "day.parquet")

    assert store.get_bytes("features/a/2026-11-01.parquet") == data
    assert stored.size == len(data) and stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.uri == store.uri("features/a/2026-11-01.parquet")
    assert store.list_keys("features/a") == ["features/a/2026-11-01.parquet"]


def test_an_empty_file_is_an_empty_object(store, tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    stored = store.put_file("blobs/empty.bin", tmp_path / "empty")
    assert store.get_bytes("blobs/empty.bin") == b"" and stored.size == 0
    assert stored.sha256 == hashlib.sha256(b"").hexdigest()


@pytest.fixture
def small_parts(s3_endpoint, s3_bucket):
    """A client and a store on it that uploads above 5 MiB in 5 MiB parts."""
    client = loopback_client(s3_endpoint)
    return client, small_part_store(client, s3_endpoint, s3_bucket)


def test_a_file_above_the_threshold_goes_by_multipart_upload(small_parts, s3_bucket, tmp_path):
    client, store = small_parts
    data = random_file(tmp_path / "large.bin", 12 * MiB)
    calls = count_s3_calls(client)

    stored = store.put_file("features/a/large.bin", tmp_path / "large.bin")

    # 12 MiB in 5 MiB parts: 5 + 5 + 2.
    assert calls == Counter(CreateMultipartUpload=1, UploadPart=3, CompleteMultipartUpload=1)
    assert store.get_bytes("features/a/large.bin") == data
    assert stored.sha256 == hashlib.sha256(data).hexdigest() and stored.size == len(data)
    head = client.head_object(Bucket=s3_bucket, Key="team/features/a/large.bin")
    assert head["ETag"].strip('"').endswith("-3")  # S3's ETag of a 3-part object


def test_a_file_under_the_threshold_goes_by_one_put(small_parts, tmp_path):
    client, store = small_parts
    data = random_file(tmp_path / "small.bin", 2 * MiB)
    calls = count_s3_calls(client)

    stored = store.put_file("features/a/small.bin", tmp_path / "small.bin")

    assert calls == Counter(PutObject=1)
    assert store.get_bytes("features/a/small.bin") == data
    assert stored.sha256 == hashlib.sha256(data).hexdigest()


def test_parts_under_s3s_minimum_are_refused_when_the_store_is_built(s3_endpoint, s3_bucket):
    with pytest.raises(ValueError, match="minimum part size"):
        open_s3_store(
            s3_bucket,
            region="us-east-1",
            endpoint_url=s3_endpoint,
            multipart_chunksize=4 * MiB,
        )
