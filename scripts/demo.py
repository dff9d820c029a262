"""Materialize the feature assets for the last 3 days through the embedded instance, headless.

Prints each published object with its row count and content hash; the runs also appear in the
Dagster UI of the same DAGSTER_HOME.
"""

import argparse
import sys

import dagster as dg

from assets.partitions import daily_partitions
from definitions import build_definitions

# The table below is the demo's output; run events stay in the instance for the UI.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=3)
    args = parser.parse_args(argv)

    definitions = build_definitions("local")
    job = definitions.resolve_job_def("daily_features_job")
    partition_keys = daily_partitions.get_partition_keys()[-args.days :]
    empty = []
    with dg.DagsterInstance.get() as instance:
        print(f"{'partition':<11} {'asset':<20} {'rows':>6}  {'sha256':<12}  object")
        for partition_key in partition_keys:
            result = job.execute_in_process(
                partition_key=partition_key, instance=instance, run_config=QUIET_CONSOLE
            )
            for event in sorted(
                result.get_asset_materialization_events(),
                key=lambda e: e.asset_key.to_user_string(),
            ):
                metadata = event.materialization.metadata
                rows = metadata["dagster/row_count"].value
                if not rows:
                    empty.append((partition_key, event.asset_key.to_user_string()))
                print(
                    f"{partition_key:<11} {event.asset_key.to_user_string():<20} {rows:>6}  "
                    f"{metadata['content_sha256'].value[:12]:<12}  {metadata['object_uri'].value}"
                )
    if empty:
        print(
            f"Empty partitions: {empty}. Run `make prepare` to reload the warehouse.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
