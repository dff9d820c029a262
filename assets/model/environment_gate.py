"""The environment drift gate in Dagster: a training run on an environment that is not the
locked one is refused (no retry can fix it), or, when the run config allows it, trains and
says so on the model's materialization.

The comparison itself is Dagster-free (resources/environment.py).
"""

import dagster as dg

from resources.environment import (
    LOCK_PATH,
    EnvironmentCheck,
    EnvironmentDrift,
    require_locked_environment,
)


def environment_metadata(check: EnvironmentCheck, allow_drift: bool) -> dict[str, dg.MetadataValue]:
    """What the model records of the environment that trained it: its hash (the registry's
    `environment_sha256`), the lock it was compared with, and the drift it was allowed."""
    return {
        "environment_sha256": dg.MetadataValue.text(check.environment_sha256),
        "environment": dg.MetadataValue.json(
            {
                **check.to_json(),
                "matches_lock": check.matches_lock,
                "allow_environment_drift": allow_drift,
            }
        ),
    }


def environment_gate(
    context: dg.AssetExecutionContext, allow_drift: bool, lock_path=LOCK_PATH
) -> EnvironmentCheck:
    """Refuse to train on a drifted environment unless `allow_drift`; either way the check
    goes into the materialization's metadata (merged with what the asset returns)."""
    try:
        check = require_locked_environment(allow_drift, lock_path)
    except EnvironmentDrift as err:
        raise dg.Failure(
            description=f"{context.asset_key.to_user_string()} {context.partition_key}: {err}",
            metadata={"environment_drift": dg.MetadataValue.md(err.check.table())},
            allow_retries=False,
        ) from err
    if not check.matches_lock:
        context.log.warning(
            f"training on an environment that differs from {check.lock_path} "
            f"(allow_environment_drift is set); recorded on the model:\n{check.table()}"
        )
    context.add_output_metadata(environment_metadata(check, allow_drift))
    return check
