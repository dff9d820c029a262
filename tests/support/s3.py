"""Clients and stores on the loopback S3 server the tests start (moto's S3, each request one
step: benchmarks/loopback_s3.py)."""

from __future__ import annotations

import boto3
import pytest

from resources.storage.object_store import LocalObjectStore, ObjectStore, open_s3_store

# moto accepts any credentials; these are the ones every test signs with.
TEST_CREDENTIALS = {"access_key": "testing", "secret_key": "testing"}


def loopback_client(endpoint: str):
    """A boto3 S3 client for the loopback server at `endpoint`."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=TEST_CREDENTIALS["access_key"],
        aws_secret_access_key=TEST_CREDENTIALS["secret_key"],
    )


def local_or_s3_store(request: pytest.FixtureRequest, tmp_path, prefix: str) -> ObjectStore:
    """For a fixture parametrized over ["local", "s3"]: a store in `tmp_path`, or one under
    `prefix` of a fresh bucket on the loopback server."""
    if request.param == "local":
        return LocalObjectStore(tmp_path / "store")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return open_s3_store(
        bucket, prefix, region="us-east-1", endpoint_url=endpoint, **TEST_CREDENTIALS
    )
