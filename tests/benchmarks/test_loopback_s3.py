"""The loopback S3 server applies a conditional write as one step, as S3 does: of writers that
overlap with the same ETag, exactly one is accepted. The window between moto's ETag check and
its store is widened here (its object lookup sleeps after reading), so that the writers
overlap every time; moto's own ThreadedMotoServer accepts several of them in that window,
which shows the test can fail."""

import threading
import time
import uuid
from collections import Counter

import pytest
from botocore.exceptions import ClientError
from moto.s3.models import S3Backend
from moto.server import ThreadedMotoServer

from benchmarks.loopback_s3 import LoopbackS3
from tests.support.s3 import loopback_client

WRITERS = 4
# Each writer's check reads, then waits this long before it stores: writers that leave the
# barrier less than this apart (a few ms here, on a busy machine too) all check before any
# stores, unless the server applies each request as one step.
LOOKUP_DELAY_S = 0.5


@pytest.fixture
def slow_object_lookup(monkeypatch):
    """moto's object lookup (the ETag check's read) sleeps after it has read, in this
    process's server threads: what it returns is stale by the time the check uses it."""
    lookup = S3Backend.get_object

    def slow(self, *args, **kwargs):
        found = lookup(self, *args, **kwargs)
        time.sleep(LOOKUP_DELAY_S)
        return found

    monkeypatch.setattr(S3Backend, "get_object", slow)


def _race_if_match(endpoint: str) -> Counter:
    """WRITERS overlapping `IfMatch` PUTs of one key, all holding its current ETag."""
    client = loopback_client(endpoint)
    bucket = f"race-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    # Every body differs from the others, so no write can bring back an ETag a writer holds.
    etag = client.put_object(Bucket=bucket, Key="pointer", Body=b"initial")["ETag"]
    start = threading.Barrier(WRITERS)
    outcomes: Counter = Counter()
    counted = threading.Lock()

    def write(writer: int) -> None:
        own_client = loopback_client(endpoint)
        start.wait()
        try:
            own_client.put_object(Bucket=bucket, Key="pointer", Body=b"v%d" % writer, IfMatch=etag)
            outcome = "accepted"
        except ClientError as err:
            outcome = err.response["ResponseMetadata"]["HTTPStatusCode"]
        with counted:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def test_overlapping_conditional_writes_have_exactly_one_winner(slow_object_lookup):
    server = LoopbackS3().start()
    try:
        outcomes = _race_if_match(server.endpoint)
    finally:
        server.stop()
    assert outcomes == Counter({"accepted": 1, 412: WRITERS - 1})


def test_moto_alone_lets_overlapping_writers_through(slow_object_lookup):
    """Why the server applies each request as one step. Should a moto upgrade make this fail,
    benchmarks/loopback_s3.py says what else the lock guards (moto's lazy ETags)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        outcomes = _race_if_match(f"http://{host}:{port}")
    finally:
        server.stop()
    assert outcomes["accepted"] > 1, outcomes
