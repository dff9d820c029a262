"""Object storage:
create_only   create-only writes whose refusal (412 exists, 409 not applied) is settled by a read
object_store  the Dagster-free store (local directory or S3; shared with `training/`)
resource      the interface assets depend on, and the local-directory resource
s3_resource   the S3 resource through dagster-aws (imported only by production)
"""
