"""Shared by the registry tests: version records without a checkpoint behind them, and
faults injected at the store boundary (into the store, or into the boto3 client under it)."""

from dataclasses import dataclass

from resources.registry.registry import ModelVersion
from resources.storage.object_store import ConditionalWriteConflict, PreconditionFailed


def record(version: str, run_id: str = "run-test", **overrides) -> ModelVersion:
    fields = {
        "version": version,
        "day": "2025-01-10",
        "checkpoint_key": f"checkpoints/model_checkpoint/2025-01-10/{version}/step-000010",
        "checkpoint_manifest_uri": f"file:///nowhere/{version}/manifest.json",
        "manifest_sha256": "a" * 64,
        "config": {},
        "dataset": {"inputs": []},
        "fingerprint": f"fp-{version}",
        "parent_version": None,
        "code_version": "code",
        "environment": {"environment_sha256": "e" * 64},
        "image_digest": None,
        "torch_version": "2.13.0",
        "metrics": {"eval_auc": 0.7},
        "evaluation": {"passed": True},
        "run_id": run_id,
    }
    return ModelVersion(**{**fields, **overrides})


# Faults at the store boundary -------------------------------------------------------------


class Killed(BaseException):
    """Stands for the process dying at this point: the registry catches `Exception` only, so
    nothing after it runs (the SIGKILL suite, test_kill_safety.py, shows the same with real
    processes)."""


def write_kind(key: str) -> str:
    """Which registry write a key is: version_record, pointer or history/<file name>."""
    if "/versions/" in key:
        return "version_record"
    if "/aliases/" in key:
        return "pointer"
    return "history/" + key.rsplit("/", 1)[-1]


@dataclass
class Fault:
    """Fail the writes of one kind with `error`; `applied`: the write lands first and only its
    answer is the error (a lost or misleading response). `times`: None for every attempt."""

    write: str
    error: str  # "412", "409", "timeout", "reset" or "kill"
    applied: bool = False
    times: int | None = 1
    injected: int = 0

    def fires(self, key: str) -> bool:
        if write_kind(key) != self.write or (
            self.times is not None and self.injected >= self.times
        ):
            return False
        self.injected += 1
        return True


def local_error(error: str, key: str) -> BaseException:
    """What the local store (or the OS under it) raises for each fault."""
    return {
        "412": lambda: PreconditionFailed(f"{key}: injected 412", key=key),
        "409": lambda: ConditionalWriteConflict(f"{key}: injected 409", key=key),
        "timeout": lambda: TimeoutError(f"{key}: injected timeout"),
        "reset": lambda: ConnectionResetError(f"{key}: injected connection reset"),
        "kill": lambda: Killed(key),
    }[error]()


def s3_client_error(error: str, key: str) -> BaseException:
    """What botocore raises for each fault: the S3 store's own mapping is under test."""
    from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

    def client_error(status: int, code: str) -> ClientError:
        return ClientError(
            {
                "Error": {"Code": code, "Message": f"injected {status} on {key}"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
            "PutObject",
        )

    return {
        "412": lambda: client_error(412, "PreconditionFailed"),
        "409": lambda: client_error(409, "ConditionalRequestConflict"),
        "timeout": lambda: ReadTimeoutError(endpoint_url=f"http://s3/{key}"),
        "reset": lambda: ConnectionClosedError(endpoint_url=f"http://s3/{key}"),
        "kill": lambda: Killed(key),
    }[error]()


class FaultyStore:
    """A ConditionalObjectStore that injects `fault` into its conditional writes and counts
    the writes it passes on and the ones the real store refused."""

    def __init__(self, store, fault: Fault | None = None):
        self._store, self.fault = store, fault
        self.writes: list[str] = []
        self.refused: list[str] = []
        self.after_list = None  # called once, after the next list_keys (a concurrent writer)

    def __getattr__(self, name):
        return getattr(self._store, name)

    def _write(self, method: str, key: str, *args):
        real = getattr(self._store, method)
        if self.fault is not None and self.fault.fires(key):
            if self.fault.applied:
                real(key, *args)
            raise local_error(self.fault.error, key)
        self.writes.append(write_kind(key))
        try:
            return real(key, *args)
        except PreconditionFailed:
            self.refused.append(write_kind(key))
            raise

    def put_if_absent(self, key, data):
        return self._write("put_if_absent", key, data)

    def put_if_version(self, key, data, version):
        return self._write("put_if_version", key, data, version)

    def list_keys(self, prefix):
        keys = self._store.list_keys(prefix)
        hook, self.after_list = self.after_list, None
        if hook is not None:
            hook()
        return keys


class FaultyS3Client:
    """A boto3 S3 client whose conditional `put_object` calls get `fault`, raised as botocore
    raises it, so that S3ObjectStore's handling of 412/409/timeouts is what is tested."""

    def __init__(self, client, fault: Fault | None = None):
        self._client, self.fault = client, fault

    def __getattr__(self, name):
        return getattr(self._client, name)

    def put_object(self, **kwargs):
        conditional = "IfMatch" in kwargs or "IfNoneMatch" in kwargs
        if conditional and self.fault is not None and self.fault.fires(kwargs["Key"]):
            if self.fault.applied:
                self._client.put_object(**kwargs)
            raise s3_client_error(self.fault.error, kwargs["Key"])
        return self._client.put_object(**kwargs)
