"""Where the Spark job writes under a launch's output URI: what it and the asset agree on.
Kept free of pyspark, so the asset reads the outputs without it."""


def table_uri(output: str, table: str, partition: str) -> str:
    """A table of a day: parquet parts in order (by name), then Spark's `_SUCCESS`."""
    return f"{output}/{table}/{partition}"


def refusal_uri(output: str, partition: str) -> str:
    """Why the job computed no table of a day (a snapshot that is not the approved one)."""
    return f"{output}/refused/{partition}.json"


def staged_snapshot_uri(output: str, partition: str) -> str:
    """The day's snapshot as the job copied and checked it, which Spark reads."""
    return f"{output}/snapshots/{partition}.parquet"
