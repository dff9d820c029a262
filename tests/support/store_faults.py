"""Faults injected into the conditional writes of one key, for the create-only and
compare-and-swap writers outside the registry (alert markers, evaluation reports, approval
pointers): at the local store's boundary, or in the boto3 client under the S3 store (moto's
S3 on loopback, benchmarks/loopback_s3.py), raised as each raises them
(tests/support/registry.py)."""

from collections.abc import Callable
from dataclasses import dataclass

import boto3

from resources.storage.object_store import LocalObjectStore, open_s3_store
from tests.support.registry import FaultyS3Client, local_error


@dataclass
class KeyFault:
    """Fail the conditional writes of keys ending with `suffix` with `error` ("409", "412");
    `applied`: the write lands first and only its answer is the error (a lost response).
    `before`: run once before the first injection (a concurrent writer acting meanwhile).
    `times`: None for every attempt."""

    suffix: str
    error: str
    applied: bool = False
    times: int | None = 1
    before: Callable[[], None] | None = None
    injected: int = 0

    def fires(self, key: str) -> bool:
        if not key.endswith(self.suffix) or (
            self.times is not None and self.injected >= self.times
        ):
            return False
        self.injected += 1
        if self.before is not None:
            before, self.before = self.before, None
            before()
        return True


class FaultyLocalStore:
    """A LocalObjectStore whose conditional writes get the fault."""

    def __init__(self, store: LocalObjectStore):
        self._store, self.fault = store, None

    def __getattr__(self, name):
        return getattr(self._store, name)

    def _conditional(self, method: str, key: str, *args):
        real = getattr(self._store, method)
        if self.fault is not None and self.fault.fires(key):
            if self.fault.applied:
                real(key, *args)
            raise local_error(self.fault.error, key)
        return real(key, *args)

    def put_if_absent(self, key, data):
        return self._conditional("put_if_absent", key, data)

    def put_if_version(self, key, data, version):
        return self._conditional("put_if_version", key, data, version)


class FaultyStores:
    """A store whose conditional writes go through `inject`'s fault, and a plain one on the
    same objects for checking (and for concurrent writers): local disk or S3 on loopback."""

    def __init__(self, backend: str, request, tmp_path):
        if backend == "local":
            self.faulty = FaultyLocalStore(LocalObjectStore(tmp_path))
            self.store, self.plain = self.faulty, LocalObjectStore(tmp_path)
            return
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.faulty = FaultyS3Client(client)
        self.store = self._s3(endpoint, bucket, self.faulty)
        self.plain = self._s3(endpoint, bucket)

    @staticmethod
    def _s3(endpoint: str, bucket: str, client=None):
        return open_s3_store(
            bucket,
            "ml",
            region="us-east-1",
            endpoint_url=endpoint,
            access_key="testing",
            secret_key="testing",
            client=client,
        )

    def inject(self, fault: KeyFault) -> KeyFault:
        self.faulty.fault = fault
        return fault
