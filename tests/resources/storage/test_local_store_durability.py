"""The local store makes its renames, links and new directories durable (the directory is
fsynced after them) and removes the temp files that killed writers leave behind, once they are
old."""

import os
import stat
import time

from resources.storage import object_store
from resources.storage.object_store import LocalObjectStore


def _record_syscalls(monkeypatch) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace, real_link = os.fsync, os.replace, os.link

    def fsync(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        calls.append((f"fsync-{kind}", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        calls.append(("rename", str(dst)))
        return real_replace(src, dst)

    def link(src, dst):
        calls.append(("link", str(dst)))
        return real_link(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "link", link)
    return calls


def test_the_directory_is_fsynced_after_every_rename_and_link(tmp_path, monkeypatch):
    store = LocalObjectStore(tmp_path)
    calls = _record_syscalls(monkeypatch)
    directory = str(tmp_path / "registry" / "m" / "aliases")

    store.put_if_absent("registry/m/aliases/a.json", b"A")
    version = store.read_with_version("registry/m/aliases/a.json").version
    store.put_if_version("registry/m/aliases/a.json", b"B", version)
    store.put_bytes("registry/m/aliases/b.json", b"C")

    for index, (call, path) in enumerate(calls):
        if call in ("rename", "link"):
            assert ("fsync-dir", directory) in calls[index + 1 :], (call, path, calls)
    assert sum(1 for call, _ in calls if call in ("rename", "link")) == 3
    assert sum(1 for call in calls if call == ("fsync-dir", directory)) >= 3
    # The directories created on the way are durable in their parents too.
    for created in ("registry", "registry/m", "registry/m/aliases"):
        parent = str((tmp_path / created).parent)
        assert ("fsync-dir", parent) in calls, (created, calls)


def test_stale_temp_files_are_removed_when_the_store_opens(tmp_path, monkeypatch):
    monkeypatch.setattr(object_store, "_swept_roots", set())
    folder = tmp_path / "registry" / "m" / "aliases"
    folder.mkdir(parents=True)
    stale = folder / ".production.json.k2j4h1x9.tmp"
    fresh = folder / ".production.json.a8d7f6s5.tmp"
    lock = folder / ".production.json.lock"
    kept = folder / "production.json"
    for path in (stale, fresh, lock, kept):
        path.write_bytes(b"x")
    an_hour_and_more = time.time() - object_store.STALE_TEMP_AFTER_S - 60
    os.utime(stale, (an_hour_and_more, an_hour_and_more))
    os.utime(lock, (an_hour_and_more, an_hour_and_more))

    LocalObjectStore(tmp_path)

    assert not stale.exists()
    # A temp file a live writer may still own, the CAS lock and objects stay.
    assert fresh.exists() and lock.exists() and kept.exists()
