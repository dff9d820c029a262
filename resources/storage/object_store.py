"""Object storage behind one small interface: a local directory or an S3 bucket.

Dagster-free on purpose: the feature assets and the pure-torch trainer share it.
Every write is atomic: readers see the previous object or the new one, never a partial one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlencode

import pyarrow.fs as pafs

_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]*$")


class InvalidObjectKey(ValueError):
    """A key that could escape the store's root or is not a plain relative path."""


class ObjectNotFound(FileNotFoundError):
    """The requested key holds no object."""


def validate_object_key(key: str) -> str:
    """Return `key` if every segment is a plain name; refuse traversal and absolute paths."""
    segments = key.split("/")
    bad = [s for s in segments if not _KEY_SEGMENT.match(s)]
    if not key or bad:
        raise InvalidObjectKey(
            f"Object key {key!r} is not a relative path of plain names (offending segments: "
            f"{bad or [key]}). Build keys from validated partition keys, never from raw input."
        )
    return key


class PreconditionFailed(RuntimeError):
    """A conditional write was refused: the object exists (create-only) or its version is not
    the expected one (compare-and-swap). This request wrote nothing, yet an earlier attempt of
    the same write (a client retry after a lost response) may have: re-read and re-decide."""

    def __init__(self, message: str, *, key: str):
        super().__init__(message)
        self.key = key


class ConditionalWriteConflict(PreconditionFailed):
    """S3's 409 ConditionalRequestConflict: another conditional write to the key was in flight,
    this one was not applied and may be sent again (the key may still be absent or unchanged)."""


@dataclass(frozen=True)
class VersionedBytes:
    """An object's bytes and the version a compare-and-swap must name (`put_if_version`)."""

    data: bytes
    version: str


@dataclass(frozen=True)
class StoredObject:
    key: str
    uri: str
    size: int
    sha256: str


class ObjectStore(Protocol):
    """What features and checkpoints need from storage; keys are '/'-separated relative paths."""

    def put_bytes(self, key: str, data: bytes) -> StoredObject: ...

    def put_file(self, key: str, path: str | os.PathLike[str]) -> StoredObject:
        """Store the file at `path` under `key` without reading it into memory (size and sha256
        are those of the bytes streamed); as atomic as `put_bytes`. The file must not change
        while it is stored."""
        ...

    def get_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list_keys(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...

    def uri(self, key: str) -> str: ...

    def reader_uri(self, key: str) -> str:
        """The object's URI for another process to open with pyarrow's
        `FileSystem.from_uri`: this store's endpoint and region in it, never credentials
        (that process reads with its own identity)."""
        ...

    def arrow_location(self, key: str) -> tuple[pafs.FileSystem, str]:
        """(filesystem, path) for pyarrow readers that stream the object."""
        ...


class ConditionalObjectStore(ObjectStore, Protocol):
    """An ObjectStore with the two atomic primitives the model registry is built on.

    A version is derived from the content (sha256 locally, the ETag on S3): writers that need
    every write to be distinct (no A-B-A) put a sequence number into the content.
    """

    def put_if_absent(self, key: str, data: bytes) -> StoredObject:
        """Create `key` only if no object exists there; PreconditionFailed otherwise."""
        ...

    def read_with_version(self, key: str) -> VersionedBytes:
        """The object's bytes and version; ObjectNotFound when absent."""
        ...

    def put_if_version(self, key: str, data: bytes, version: str) -> StoredObject:
        """Replace `key` only if its current version is `version`; PreconditionFailed otherwise
        (also when the object no longer exists)."""
        ...


def _stored(key: str, uri: str, data: bytes) -> StoredObject:
    return StoredObject(key=key, uri=uri, size=len(data), sha256=hashlib.sha256(data).hexdigest())


# Files are read, hashed and copied in pieces of this size, so storing an object of any size
# holds one piece in memory.
FILE_CHUNK_BYTES = 1 << 20


class HashingReader:
    """A file's bytes in fixed-size chunks, hashed and counted as they are read."""

    def __init__(self, source: BinaryIO):
        self.source, self.size, self._sha256 = source, 0, hashlib.sha256()

    def chunks(self) -> Iterator[bytes]:
        while chunk := self.source.read(FILE_CHUNK_BYTES):
            self._sha256.update(chunk)
            self.size += len(chunk)
            yield chunk

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()


def digest_file(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(size, sha256) of a file, read in chunks by the standard library."""
    with open(path, "rb") as source:
        return os.fstat(source.fileno()).st_size, hashlib.file_digest(source, "sha256").hexdigest()


# A temp file untouched for this long belongs to a writer that died (a live writer fsyncs and
# renames within seconds of its last write); the store removes such files when it opens.
STALE_TEMP_AFTER_S = 3600.0
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")
_swept_roots: set[Path] = set()  # roots already swept by this process


def _fsync_directory(directory: Path) -> None:
    """Make a rename or link in `directory` durable: without it a power loss can undo a rename
    that readers already saw (the directory entry lives in the directory's own blocks)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temp_files(root: Path, older_than_s: float = STALE_TEMP_AFTER_S) -> list[Path]:
    """Delete the store's own temp files (`.<name>.<random>.tmp`) that no write touched for
    `older_than_s`: what a killed writer leaves behind. Returns what was removed."""
    removed: list[Path] = []
    cutoff = time.time() - older_than_s
    for directory, _, names in os.walk(root):
        for name in names:
            if not _TEMP_NAME.match(name):
                continue
            path = Path(directory, name)
            with contextlib.suppress(FileNotFoundError):  # its writer finished meanwhile
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path)
    return removed


class LocalObjectStore:
    """A directory on local disk; atomic writes by temp file + fsync + rename in the same dir,
    then an fsync of the directory so the rename survives a power loss."""

    def __init__(
        self, root: str | os.PathLike[str], stale_temp_after_s: float = STALE_TEMP_AFTER_S
    ):
        self.root = Path(root).resolve()
        # Once per process and root: opening a store is frequent, the sweep walks the tree.
        if self.root not in _swept_roots and self.root.is_dir():
            remove_stale_temp_files(self.root, stale_temp_after_s)
            _swept_roots.add(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_object_key(key).split("/"))

    def _make_directory(self, directory: Path) -> None:
        """mkdir -p, with each new directory's entry made durable in its parent."""
        missing = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for created in reversed(missing):
            created.mkdir(exist_ok=True)
            _fsync_directory(created.parent)

    def _write_temp(self, path: Path, chunks: Iterable[bytes]) -> str:
        """A complete, fsynced temp file next to `path` (hidden from list_keys)."""
        self._make_directory(path.parent)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as tmp:
                for chunk in chunks:
                    tmp.write(chunk)
                tmp.flush()
                os.fsync(tmp.fileno())
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return tmp_name

    def _replace(self, path: Path, chunks: Iterable[bytes]) -> None:
        """Readers see the old bytes or the new ones, never a partial file."""
        tmp_name = self._write_temp(path, chunks)
        try:
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync_directory(path.parent)

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        self._replace(self._path(key), (data,))
        return _stored(key, self.uri(key), data)

    def put_file(self, key: str, path: str | os.PathLike[str]) -> StoredObject:
        """Copied chunk by chunk into the temp file the rename publishes: a writer killed
        mid-copy leaves only a temp file, which the stale-temp sweep removes."""
        target = self._path(key)
        with open(path, "rb") as source:
            reader = HashingReader(source)
            self._replace(target, reader.chunks())
        return StoredObject(key=key, uri=self.uri(key), size=reader.size, sha256=reader.sha256)

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError as err:
            raise ObjectNotFound(f"No object at {self.uri(key)}") from err

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    # Conditional writes (the model registry) -------------------------------------------------

    def put_if_absent(self, key: str, data: bytes) -> StoredObject:
        """Exclusive create: the complete temp file is hard-linked to the final name, which
        fails atomically (in every process) if the name exists; readers never see a partial
        object."""
        path = self._path(key)
        tmp_name = self._write_temp(path, (data,))
        try:
            os.link(tmp_name, path)
        except FileExistsError as err:
            raise PreconditionFailed(
                f"{self.uri(key)} already exists; create-only objects are never replaced",
                key=key,
            ) from err
        finally:
            Path(tmp_name).unlink(missing_ok=True)
        _fsync_directory(path.parent)  # the new name and the temp file's removal
        return _stored(key, self.uri(key), data)

    def read_with_version(self, key: str) -> VersionedBytes:
        data = self.get_bytes(key)
        return VersionedBytes(data=data, version=hashlib.sha256(data).hexdigest())

    @contextlib.contextmanager
    def _key_lock(self, path: Path) -> Iterator[None]:
        """An exclusive flock on `.<name>.lock` next to the key: serializes compare-and-swap
        across processes; the kernel releases it when the holder dies (even by SIGKILL)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def put_if_version(self, key: str, data: bytes, version: str) -> StoredObject:
        """Compare-and-swap: under the key's lock, re-hash the current content; replace it
        (temp + fsync + rename, so lock-free readers see old or new) only if it matches."""
        path = self._path(key)
        with self._key_lock(path):
            try:
                current = hashlib.sha256(path.read_bytes()).hexdigest()
            except FileNotFoundError as err:
                raise PreconditionFailed(
                    f"{self.uri(key)} does not exist; expected version {version[:12]}",
                    key=key,
                ) from err
            if current != version:
                raise PreconditionFailed(
                    f"{self.uri(key)} is at version {current[:12]}, not the expected "
                    f"{version[:12]}: it changed since it was read",
                    key=key,
                )
            self._replace(path, (data,))
        return _stored(key, self.uri(key), data)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def reader_uri(self, key: str) -> str:
        return self.uri(key)

    def arrow_location(self, key: str) -> tuple[pafs.FileSystem, str]:
        return pafs.LocalFileSystem(), str(self._path(key))


# put_file on S3: files from the threshold up go by multipart upload in parts of the chunk size.
# A part takes one request and is retried alone, so a large day survives a dropped connection;
# S3 refuses parts under 5 MiB (all but the last), at CompleteMultipartUpload, after the upload.
MULTIPART_THRESHOLD_BYTES = 64 << 20
MULTIPART_CHUNKSIZE_BYTES = 16 << 20
S3_MIN_PART_BYTES = 5 << 20


class S3ObjectStore:
    """A bucket prefix; writes are single PUTs or multipart uploads (both atomic on S3), reads
    stream through pyarrow.fs.

    `client` is a boto3 S3 client, used for calls pyarrow does not offer (conditional writes,
    deletes, uploads); `filesystem` is a pyarrow S3FileSystem pointed at the same endpoint.
    """

    def __init__(
        self,
        client: Any,
        filesystem: pafs.FileSystem,
        bucket: str,
        prefix: str = "",
        *,
        multipart_threshold: int = MULTIPART_THRESHOLD_BYTES,
        multipart_chunksize: int = MULTIPART_CHUNKSIZE_BYTES,
    ):
        if multipart_chunksize < S3_MIN_PART_BYTES or multipart_threshold < 1:
            raise ValueError(
                f"multipart_chunksize {multipart_chunksize} is under S3's minimum part size "
                f"({S3_MIN_PART_BYTES} bytes), or multipart_threshold {multipart_threshold} is "
                "not positive"
            )
        self.client = client
        self.filesystem = filesystem
        self.bucket = bucket
        self.prefix = validate_object_key(prefix.strip("/")) if prefix.strip("/") else ""
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize

    def _s3_key(self, key: str) -> str:
        validate_object_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        self.client.put_object(Bucket=self.bucket, Key=self._s3_key(key), Body=data)
        return _stored(key, self.uri(key), data)

    def put_file(self, key: str, path: str | os.PathLike[str]) -> StoredObject:
        """One PUT under the threshold, a multipart upload from it up. Either way the key shows
        the previous object until the new one is complete: S3 makes a multipart object visible
        only at CompleteMultipartUpload. On an error s3transfer aborts the upload itself
        (CreateMultipartUploadTask registers abort_multipart_upload as the transfer's failure
        cleanup, s3transfer/tasks.py); a killed process leaves an incomplete upload, invisible
        to readers, for the bucket's AbortIncompleteMultipartUpload lifecycle rule."""
        from boto3.s3.transfer import TransferConfig  # only the S3 path needs it

        s3_key = self._s3_key(key)
        size, sha256 = digest_file(path)  # one chunked pass: boto3 reads the file itself
        config = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            # "auto" switches to the CRT client on some instance types, which splits uploads
            # its own way: the thresholds above would not hold there.
            preferred_transfer_client="classic",
        )
        self.client.upload_file(str(path), self.bucket, s3_key, Config=config)
        return StoredObject(key=key, uri=self.uri(key), size=size, sha256=sha256)

    def get_bytes(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._s3_key(key))
        except self.client.exceptions.NoSuchKey as err:
            raise ObjectNotFound(f"No object at {self.uri(key)}") from err
        return response["Body"].read()

    def exists(self, key: str) -> bool:
        info = self.filesystem.get_file_info(f"{self.bucket}/{self._s3_key(key)}")
        return info.type == pafs.FileType.File

    def list_keys(self, prefix: str) -> list[str]:
        full_prefix = self._s3_key(prefix) if prefix else self.prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
            keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._s3_key(key))

    # Conditional writes (the model registry) -------------------------------------------------

    def _conditional_put(self, key: str, data: bytes, **condition: str) -> StoredObject:
        from botocore.exceptions import ClientError  # only the S3 path needs it

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._s3_key(key), Body=data, **condition
            )
        except ClientError as err:
            error = err.response.get("Error", {})
            code = error.get("Code", "")
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "PreconditionFailed" or status == 412:
                raise PreconditionFailed(
                    f"{self.uri(key)}: precondition {condition} failed (412): "
                    f"{error.get('Message', code)}",
                    key=key,
                ) from err
            if code == "ConditionalRequestConflict" or status == 409:
                raise ConditionalWriteConflict(
                    f"{self.uri(key)}: precondition {condition} not applied ({status} {code}): "
                    "a concurrent conditional write was in flight; re-read the object and decide "
                    "again",
                    key=key,
                ) from err
            if code == "NoSuchKey" or status == 404:  # IfMatch on a deleted object
                raise PreconditionFailed(
                    f"{self.uri(key)}: precondition {condition} not applied ({status} {code}): "
                    "the object does not exist",
                    key=key,
                ) from err
            raise
        return _stored(key, self.uri(key), data)

    def put_if_absent(self, key: str, data: bytes) -> StoredObject:
        return self._conditional_put(key, data, IfNoneMatch="*")

    def read_with_version(self, key: str) -> VersionedBytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._s3_key(key))
        except self.client.exceptions.NoSuchKey as err:
            raise ObjectNotFound(f"No object at {self.uri(key)}") from err
        return VersionedBytes(data=response["Body"].read(), version=response["ETag"])

    def put_if_version(self, key: str, data: bytes, version: str) -> StoredObject:
        return self._conditional_put(key, data, IfMatch=version)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._s3_key(key)}"

    def reader_uri(self, key: str) -> str:
        # The boto3 client's endpoint is the one this store reaches (AWS's own, or
        # S3_ENDPOINT_URL's); pyarrow takes it, and the region, as query parameters.
        scheme, _, host = self.client.meta.endpoint_url.partition("://")
        region = self.client.meta.region_name or "us-east-1"
        query = {"region": region, "endpoint_override": host, "scheme": scheme}
        return f"{self.uri(key)}?{urlencode(query)}"

    def arrow_location(self, key: str) -> tuple[pafs.FileSystem, str]:
        return self.filesystem, f"{self.bucket}/{self._s3_key(key)}"


def arrow_s3_filesystem(
    *,
    region: str | None,
    endpoint_url: str | None,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
) -> pafs.S3FileSystem:
    """A pyarrow S3FileSystem for the same endpoint a boto3 client uses.

    Credentials left as None fall back to the default AWS chain (IRSA, instance profile).
    """
    options: dict[str, Any] = {"region": region or "us-east-1"}
    if endpoint_url:
        scheme, _, host = endpoint_url.partition("://")
        options.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    if access_key and secret_key:
        options.update(access_key=access_key, secret_key=secret_key, session_token=session_token)
    return pafs.S3FileSystem(**options)


def open_s3_store(
    bucket: str,
    prefix: str = "",
    *,
    region: str | None,
    endpoint_url: str | None,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
    client: Any = None,
    multipart_threshold: int = MULTIPART_THRESHOLD_BYTES,
    multipart_chunksize: int = MULTIPART_CHUNKSIZE_BYTES,
) -> S3ObjectStore:
    """An S3ObjectStore whose boto3 client and pyarrow filesystem reach the same endpoint.

    `client` is an already configured boto3 client (dagster-aws's S3Resource gives one); without
    it one is built from the same settings. Credentials left as None use the default AWS chain.
    The multipart settings apply to `put_file` (see S3ObjectStore.put_file).
    """
    if client is None:
        import boto3  # only the S3 path needs it

        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
        )
    filesystem = arrow_s3_filesystem(
        region=region,
        endpoint_url=endpoint_url,
        access_key=access_key,
        secret_key=secret_key,
        session_token=session_token,
    )
    return S3ObjectStore(
        client,
        filesystem,
        bucket,
        prefix,
        multipart_threshold=multipart_threshold,
        multipart_chunksize=multipart_chunksize,
    )
