"""The S3 object storage resource, through dagster-aws's S3Resource.

Kept apart from resources/storage/resource.py so that only the production resources import
dagster-aws (about 0.9 s per process that loads the definitions).
"""

from dagster_aws.s3 import S3Resource
from pydantic import Field

from resources.storage.object_store import (
    MULTIPART_CHUNKSIZE_BYTES,
    MULTIPART_THRESHOLD_BYTES,
    ObjectStore,
    open_s3_store,
)
from resources.storage.resource import ObjectStorage


class S3ObjectStorage(ObjectStorage):
    """A bucket and prefix; the boto3 client comes from dagster-aws's S3Resource."""

    s3: S3Resource
    bucket: str
    prefix: str = ""
    multipart_threshold: int = Field(
        default=MULTIPART_THRESHOLD_BYTES,
        description="Published files above this many bytes go to S3 by multipart upload.",
    )
    multipart_chunksize: int = Field(
        default=MULTIPART_CHUNKSIZE_BYTES,
        description="Part size of a multipart upload in bytes (S3's minimum is 5 MiB).",
    )

    def open_store(self) -> ObjectStore:
        return open_s3_store(
            self.bucket,
            self.prefix,
            region=self.s3.region_name,
            endpoint_url=self.s3.endpoint_url,
            access_key=self.s3.aws_access_key_id,
            secret_key=self.s3.aws_secret_access_key,
            session_token=self.s3.aws_session_token,
            client=self.s3.get_client(),
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
        )

    def trainer_args(self) -> list[str]:
        # Credentials are not arguments: the trainer takes them from its environment or role.
        # The region is: a trainer pod's environment need not carry AWS_REGION, and pyarrow
        # would then address the bucket in us-east-1.
        endpoint = ["--s3-endpoint", self.s3.endpoint_url] if self.s3.endpoint_url else []
        region = ["--s3-region", self.s3.region_name] if self.s3.region_name else []
        return ["--s3-bucket", self.bucket, "--s3-prefix", self.prefix, *endpoint, *region]
