"""A publish killed at any of its writes leaves the previous approved version readable."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from assets.partitions import daily_partitions
from assets.publishing.gate_reports import read_approval, read_published
from assets.publishing.parquet import to_parquet_bytes
from assets.publishing.write_audit_publish import Evaluation, publish_if_passed
from resources.storage.object_store import LocalObjectStore
from tests.support.environment import REPO_ROOT

DAY = "2026-11-05"
ASSET = "user_daily_features"

# The child publishes version 3 and SIGKILLs itself at one point of one write: on entering
# the n-th put_bytes/put_file/put_if_version/put_if_absent/delete ("before"), or after the temp
# file is written but before the rename that makes it visible ("mid"). Every write of a publish
# is one of those calls; the pointer's is the compare-and-swap.
_CHILD = """
import json, os, signal, sys
import pyarrow as pa
from resources.storage import object_store
from assets.publishing.write_audit_publish import Evaluation, PublishPolicy, publish_if_passed

root, kill_at, where, keep = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
calls = {"n": 0}

def kill_if_due(stage):
    if stage == where and calls["n"] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

class Store(object_store.LocalObjectStore):
    def put_bytes(self, key, data):
        calls["n"] += 1
        kill_if_due("before")
        return super().put_bytes(key, data)

    def put_file(self, key, path):
        calls["n"] += 1
        kill_if_due("before")
        return super().put_file(key, path)

    def put_if_version(self, key, data, version):
        calls["n"] += 1
        kill_if_due("before")
        return super().put_if_version(key, data, version)

    def put_if_absent(self, key, data):
        calls["n"] += 1
        kill_if_due("before")
        return super().put_if_absent(key, data)

    def delete(self, key):
        calls["n"] += 1
        kill_if_due("before")
        return super().delete(key)

real_replace = os.replace
def replace(src, dst):
    kill_if_due("mid")
    return real_replace(src, dst)
object_store.os.replace = replace

table = pa.table({"user_id": list(range(int(sys.argv[5])))})
stored = publish_if_passed(Store(root), sys.argv[6], "features", sys.argv[7], Evaluation(table, []),
                           run_id="child", policy=PublishPolicy(keep_versions=keep))
print(json.dumps({"writes": calls["n"], "key": stored.key}))
"""


def _table(rows: int) -> pa.Table:
    return pa.table({"user_id": list(range(rows))})


def _publish_in_child(root: Path, kill_at: int, where: str, keep: int, rows: int):
    return subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(root),
            str(kill_at),
            where,
            str(keep),
            str(rows),
            ASSET,
            DAY,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _versions(root: Path, rows_per_version: list[int]) -> LocalObjectStore:
    store = LocalObjectStore(root)
    for rows in rows_per_version:
        assert publish_if_passed(store, ASSET, "features", DAY, Evaluation(_table(rows), []))
    return store


def test_an_uninterrupted_publish_makes_three_writes_and_retention_deletes_the_oldest(tmp_path):
    store = _versions(tmp_path, [10, 11])
    done = _publish_in_child(tmp_path, kill_at=0, where="none", keep=2, rows=12)
    assert done.returncode == 0, done.stderr
    # object, audit report, approval pointer; then the version beyond retention is deleted.
    assert json.loads(done.stdout)["writes"] == 4
    data, report = read_published(store, ASSET, DAY, daily_partitions)
    assert data == to_parquet_bytes(_table(12)).data
    assert len(report.superseded) == 1
    kept = store.list_keys(f"features/{ASSET}/{DAY}")
    assert sorted(kept) == sorted([report.object_key, *report.superseded])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kill_at", "where"),
    [
        (1, "before"),
        (1, "mid"),
        (2, "before"),
        (2, "mid"),
        (3, "before"),
        (3, "mid"),
        (4, "before"),
    ],
)
def test_sigkill_at_every_write_keeps_the_approved_version_and_a_rerun_heals(
    tmp_path, kill_at, where
):
    store = _versions(tmp_path, [10, 11])
    approved_bytes, approved = read_published(store, ASSET, DAY, daily_partitions)

    killed = _publish_in_child(tmp_path, kill_at, where, keep=2, rows=12)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])

    data, report = read_published(store, ASSET, DAY, daily_partitions)
    pointer_moved = kill_at == 4
    if pointer_moved:
        # Killed after the commit point: the new version is the approved one, intact.
        assert data == to_parquet_bytes(_table(12)).data
    else:
        assert data == approved_bytes and report.object_key == approved.object_key

    healed = _publish_in_child(tmp_path, kill_at=0, where="none", keep=2, rows=12)
    assert healed.returncode == 0, healed.stderr
    data, report = read_published(store, ASSET, DAY, daily_partitions)
    assert data == to_parquet_bytes(_table(12)).data
    assert read_approval(store, ASSET, DAY, daily_partitions).superseded == report.superseded
