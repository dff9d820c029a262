"""The two atomic primitives the registry stands on, on both backends: create-only and CAS."""

import hashlib

import pytest

from resources.storage.object_store import LocalObjectStore, ObjectNotFound, PreconditionFailed
from tests.support.s3 import local_or_s3_store


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    return local_or_s3_store(request, tmp_path, "ml")


def test_put_if_absent_creates_once_and_never_replaces(store):
    store.put_if_absent("registry/m/versions/v1.json", b"first")
    with pytest.raises(PreconditionFailed) as raised:
        store.put_if_absent("registry/m/versions/v1.json", b"second")
    assert raised.value.key == "registry/m/versions/v1.json"
    assert store.get_bytes("registry/m/versions/v1.json") == b"first"
    # Temp files and lock files never show up as objects.
    assert store.list_keys("registry") == ["registry/m/versions/v1.json"]


def test_put_if_version_swaps_only_from_the_version_read(store):
    key = "registry/m/aliases/production.json"
    store.put_if_absent(key, b"A")
    seen = store.read_with_version(key)
    assert seen.data == b"A"
    store.put_if_version(key, b"B", seen.version)
    # A second writer that read A too must be refused, and B must survive.
    with pytest.raises(PreconditionFailed):
        store.put_if_version(key, b"C", seen.version)
    now = store.read_with_version(key)
    assert now.data == b"B"
    assert now.version != seen.version
    store.put_if_version(key, b"D", now.version)
    assert store.get_bytes(key) == b"D"


def test_put_if_version_refuses_a_missing_object(store):
    with pytest.raises(PreconditionFailed):
        store.put_if_version("registry/m/aliases/none.json", b"x", '"0"')
    with pytest.raises(ObjectNotFound):
        store.read_with_version("registry/m/aliases/none.json")
    assert not store.exists("registry/m/aliases/none.json")


def test_local_version_is_the_content_hash(tmp_path):
    store = LocalObjectStore(tmp_path)
    store.put_if_absent("a/b.json", b"payload")
    assert store.read_with_version("a/b.json").version == hashlib.sha256(b"payload").hexdigest()
