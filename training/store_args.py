"""Where the object store is, as command-line arguments: shared by `python -m training` and the
Pipes bridge that supervises it (which must not import torch just to find the store)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from resources.storage.object_store import LocalObjectStore, ObjectStore, open_s3_store


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--store-root", help="local object-store directory")
    where.add_argument("--s3-bucket", help="S3 bucket of the object store")
    parser.add_argument("--s3-prefix", default="", help="prefix inside the bucket, e.g. ml/ctr")
    parser.add_argument(
        "--s3-endpoint", default=None, help="S3-compatible endpoint URL (default: $S3_ENDPOINT_URL)"
    )
    parser.add_argument(
        "--s3-region",
        default=None,
        help="the bucket's region (default: $AWS_REGION, then $AWS_DEFAULT_REGION)",
    )


def build_store(args: argparse.Namespace) -> ObjectStore:
    if args.store_root:
        return LocalObjectStore(args.store_root)
    return open_s3_store(
        args.s3_bucket,
        args.s3_prefix,
        region=args.s3_region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION"),
        endpoint_url=args.s3_endpoint or os.environ.get("S3_ENDPOINT_URL") or None,
        access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        session_token=os.environ.get("AWS_SESSION_TOKEN"),
    )


def store_from_args(store_args: Sequence[str]) -> ObjectStore:
    """The store named by `--store-root ...` or `--s3-bucket ... [--s3-prefix ...]` alone."""
    parser = argparse.ArgumentParser(prog="object store")
    add_store_arguments(parser)
    return build_store(parser.parse_args(list(store_args)))
