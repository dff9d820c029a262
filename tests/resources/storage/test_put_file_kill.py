"""A process SIGKILLed while it streams a file over a key's approved object leaves that object
readable and unchanged, and nothing partial under the key: locally the temp file stays hidden
until the stale-temp sweep removes it; on S3 (moto's server on loopback, which outlives the
killed client) the incomplete multipart upload is invisible to readers."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3

from resources.storage import object_store
from resources.storage.object_store import LocalObjectStore, open_s3_store
from tests.support.environment import REPO_ROOT

MiB = 1 << 20
KEY = "features/a/2026-11-01.parquet"
APPROVED = b"the approved version"

# put_file reads its source from a FIFO the test feeds: the child cannot reach the end of the
# file (nor the rename) before the test has seen its temp file grow and killed it.
_LOCAL_CHILD = """
import sys
from resources.storage.object_store import LocalObjectStore
LocalObjectStore(sys.argv[1]).put_file(sys.argv[2], sys.argv[3])
"""

# The child holds the upload's threads once a part is in S3 (a botocore event hook), says so
# once on stdout and waits on stdin, which the test never writes: it dies mid-multipart-upload.
_S3_CHILD = """
import sys
from resources.storage.object_store import open_s3_store

endpoint, bucket, key, path = sys.argv[1:5]
store = open_s3_store(bucket, "team", region="us-east-1", endpoint_url=endpoint,
                      multipart_threshold=5 << 20, multipart_chunksize=5 << 20)

import threading
said = threading.Lock()

def hold_after_a_part(**_):
    # Parts upload on several threads: the first to finish says so, every one then waits.
    if said.acquire(blocking=False):
        print("part uploaded", flush=True)
    sys.stdin.readline()

store.client.meta.events.register("after-call.s3.UploadPart", hold_after_a_part)
store.put_file(key, path)
"""


def _feed(fifo: Path, data: bytes, release: threading.Event) -> None:
    """Write `data` into the FIFO and keep it open (no end of file) until `release`. A write
    the killed reader never took fails with a broken pipe, as it should."""
    with contextlib.suppress(BrokenPipeError), open(fifo, "wb", buffering=0) as pipe:
        view = memoryview(data)
        while view:
            view = view[pipe.write(view) :]
        release.wait()


def _temp_file_of(directory: Path, name: str, min_size: int, child: subprocess.Popen) -> Path:
    """The child's temp file for `name` once it holds `min_size` bytes (a minute at most)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for path in directory.glob(f".{name}.*.tmp"):
            if path.stat().st_size >= min_size:
                return path
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    child.kill()
    raise AssertionError(f"no temp file of {min_size} bytes appeared in {directory}")


def test_a_local_put_file_killed_mid_copy_leaves_the_approved_object(tmp_path, monkeypatch):
    root = tmp_path / "store"
    store = LocalObjectStore(root)
    store.put_bytes(KEY, APPROVED)
    fifo = tmp_path / "day.parquet"
    os.mkfifo(fifo)
    child = subprocess.Popen(
        [sys.executable, "-c", _LOCAL_CHILD, str(root), KEY, str(fifo)],
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
    )
    release = threading.Event()
    # A daemon: should the child die before it opens the FIFO, the feeder's open never returns.
    feeder = threading.Thread(target=_feed, args=(fifo, os.urandom(12 * MiB), release), daemon=True)
    feeder.start()
    try:
        temp = _temp_file_of(root / "features" / "a", "2026-11-01.parquet", 8 * MiB, child)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        release.set()
        feeder.join(timeout=30)

    assert store.get_bytes(KEY) == APPROVED
    assert store.list_keys("features") == [KEY]
    assert temp.exists()  # what the killed writer left, hidden from readers

    # Once the temp file is old, the next process that opens the store removes it.
    long_ago = time.time() - object_store.STALE_TEMP_AFTER_S - 60
    os.utime(temp, (long_ago, long_ago))
    monkeypatch.setattr(object_store, "_swept_roots", set())
    LocalObjectStore(root)
    assert not temp.exists()
    assert sorted(p.name for p in (root / "features" / "a").iterdir()) == [Path(KEY).name]


def test_an_s3_put_file_killed_mid_multipart_upload_leaves_the_previous_object(
    s3_endpoint, s3_bucket, tmp_path
):
    store = open_s3_store(s3_bucket, "team", region="us-east-1", endpoint_url=s3_endpoint)
    store.put_bytes(KEY, APPROVED)
    new = os.urandom(12 * MiB)
    (tmp_path / "day.parquet").write_bytes(new)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _S3_CHILD,
            s3_endpoint,
            s3_bucket,
            KEY,
            str(tmp_path / "day.parquet"),
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    watchdog = threading.Timer(120, child.kill)  # a child stuck before its first part
    watchdog.start()
    try:
        said = child.stdout.readline()
        assert said == b"part uploaded\n", child.stderr.read().decode()[-2000:]
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        watchdog.cancel()
        for pipe in (child.stdin, child.stdout, child.stderr):
            pipe.close()

    assert store.get_bytes(KEY) == APPROVED
    assert store.list_keys("features") == [KEY]
    # The kill came mid-upload: S3 holds an upload that was never completed (the bucket's
    # AbortIncompleteMultipartUpload rule collects it), and it is no object.
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    uploads = client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert [upload["Key"] for upload in uploads] == [f"team/{KEY}"]

    # A rerun stores the new version whole.
    stored = store.put_file(KEY, tmp_path / "day.parquet")
    assert store.get_bytes(KEY) == new and stored.size == len(new)
