"""The one place that decides the environment and builds every resource for it.

`DAGSTER_DEPLOYMENT=local` (default): SQLite warehouse and a local object-store directory under
`LOCAL_DATA_DIR` (default `.local/` in the repository). `DAGSTER_DEPLOYMENT=prod`: S3 and
PostgreSQL, with every location and secret resolved by Dagster from `dg.EnvVar` at run time.
Called when definitions load, never at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from resources.environment import warn_on_drift
from resources.feature_engine import ENGINES, FeatureEngine
from resources.notifier import Notifier
from resources.paths import PROJECT_ROOT
from resources.pricing import ComputePrices
from resources.registry.resource import ModelRegistryResource
from resources.storage.resource import LocalObjectStorage, ObjectStorage
from resources.trainer.gpu_policy import GpuPolicy
from resources.trainer.launcher import LocalTrainerLauncher
from resources.warehouse.resource import Warehouse

DEPLOYMENTS = ("local", "prod")
# Optional settings are wired through EnvVar only when the variable is set, so a pod using its
# IAM role (no keys) or real AWS endpoints (no override) needs none of them.
_OPTIONAL_S3_SETTINGS = {
    "endpoint_url": "S3_ENDPOINT_URL",
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "AWS_SESSION_TOKEN",
}

# The promotion identity (deployments/iam/promotion.json): the only credentials that may write
# the registry's versions, alias pointers and history. Present only where a promotion or
# rollback runs; elsewhere the registry reads with the pod's own identity, which cannot write it.
_PROMOTION_S3_SETTINGS = {
    "aws_access_key_id": "PROMOTION_AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "PROMOTION_AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "PROMOTION_AWS_SESSION_TOKEN",
}

_OPTIONAL_NOTIFIER_SETTINGS = {"webhook_url": "ALERT_WEBHOOK_URL"}
# Recorded on every model as lineage; the image build sets it.
_OPTIONAL_BUILD_SETTINGS = {"image_digest": "IMAGE_DIGEST"}
_OPTIONAL_TRAINER_SETTINGS = {
    "namespace": "TRAINER_NAMESPACE",
    "service_account_name": "TRAINER_SERVICE_ACCOUNT",
    "env_secret": "TRAINER_ENV_SECRET",
}


# The feature tables' engine (resources/feature_engine.py): FEATURE_ENGINE=spark selects the
# Spark job; in production it runs on the EMR Serverless application these name.
_OPTIONAL_FEATURE_ENGINE_SETTINGS = {
    "engine": "FEATURE_ENGINE",
    "output_uri": "FEATURE_ENGINE_OUTPUT_URI",
    "declarations": "FEATURE_ENGINE_DECLARATIONS",
}
_OPTIONAL_EMR_SETTINGS = {
    "emr_application_id": "SPARK_EMR_APPLICATION_ID",
    "emr_execution_role_arn": "SPARK_EMR_EXECUTION_ROLE_ARN",
    "emr_entry_point": "SPARK_EMR_ENTRY_POINT",
    "emr_submit_parameters": "SPARK_EMR_SUBMIT_PARAMETERS",
}


# What the SLO asset prices run time at (resources/pricing.py has the defaults).
_OPTIONAL_PRICE_SETTINGS = {
    "cpu_hour_usd": "CPU_HOUR_PRICE_USD",
    "gpu_hour_usd": "GPU_HOUR_PRICE_USD",
    "cpus_per_run": "RUN_CPUS",
}


def _env_vars_that_are_set(settings: dict[str, str]) -> dict[str, dg.EnvVar]:
    return {field: dg.EnvVar(name) for field, name in settings.items() if name in os.environ}


# The training nodes, per flavor: baked into the image with the code, GPU_INVENTORY_FILE overrides.
DEFAULT_GPU_INVENTORY = PROJECT_ROOT / "deployments" / "k8s" / "gpu-inventory.yaml"


def trainer_shape_settings() -> dict[str, Any]:
    """The trainer's shape and the inventory it must pack, read when the definitions load so a
    shape that cannot pack fails the code location with the shapes that would (not a run later).
    TRAINER_GPUS: GPUs per attempt; TRAINER_GPU_FLAVOR: the node flavor (default: the first)."""
    from resources.trainer.gpu_inventory import load_inventory

    settings: dict[str, Any] = {
        "inventory": load_inventory(os.environ.get("GPU_INVENTORY_FILE") or DEFAULT_GPU_INVENTORY)
    }
    if "TRAINER_GPUS" in os.environ:
        value = os.environ["TRAINER_GPUS"]
        if not value.strip().isdigit():
            raise ValueError(f"TRAINER_GPUS={value!r} is not a whole number of GPUs")
        settings["gpus"] = int(value)
    if "TRAINER_GPU_FLAVOR" in os.environ:
        settings["gpu_flavor"] = os.environ["TRAINER_GPU_FLAVOR"]
    return settings


def promotion_storage(storage: ObjectStorage) -> ObjectStorage:
    """The store the registry writes through: built from the promotion identity's own
    credentials when `PROMOTION_AWS_ACCESS_KEY_ID` is set, else the pipeline's `storage`."""
    if "PROMOTION_AWS_ACCESS_KEY_ID" not in os.environ:
        return storage
    from dagster_aws.s3 import S3Resource

    from resources.storage.s3_resource import S3ObjectStorage

    return S3ObjectStorage(
        s3=S3Resource(
            region_name=dg.EnvVar("AWS_REGION"),
            **_env_vars_that_are_set({"endpoint_url": "S3_ENDPOINT_URL"} | _PROMOTION_S3_SETTINGS),
        ),
        bucket=dg.EnvVar("OBJECT_STORE_BUCKET"),
        prefix=dg.EnvVar("OBJECT_STORE_PREFIX"),
    )


def gpu_policy() -> GpuPolicy:
    """`GPU_MAX_PREEMPTIONS` (optional) overrides how often a backfill run may yield its GPU."""
    if "GPU_MAX_PREEMPTIONS" in os.environ:
        return GpuPolicy(max_preemptions_per_run=dg.EnvVar.int("GPU_MAX_PREEMPTIONS"))
    return GpuPolicy()


def production_feature_engine() -> FeatureEngine:
    """The feature engine of a production deployment, checked when the definitions load: the
    Spark engine runs on EMR Serverless there (the run pods have no Spark), so it needs every
    SPARK_EMR_* setting and an s3:// output both the job and the run pods reach."""
    engine = os.environ.get("FEATURE_ENGINE", "local")
    if engine not in ENGINES:
        raise ValueError(f"FEATURE_ENGINE={engine!r} is not one of {ENGINES}")
    if engine == "local":
        return FeatureEngine(**_env_vars_that_are_set(_OPTIONAL_FEATURE_ENGINE_SETTINGS))
    required = [*_OPTIONAL_EMR_SETTINGS.values(), "FEATURE_ENGINE_OUTPUT_URI"]
    missing = [name for name in required if not os.environ.get(name)]
    if missing:
        raise ValueError(
            f"FEATURE_ENGINE=spark in production runs the feature job on EMR Serverless and "
            f"needs {', '.join(missing)} (docs/pipeline.md); set them, or unset FEATURE_ENGINE "
            "to compute the tables in the run pods."
        )
    if not os.environ["FEATURE_ENGINE_OUTPUT_URI"].startswith("s3://"):
        raise ValueError(
            f"FEATURE_ENGINE_OUTPUT_URI={os.environ['FEATURE_ENGINE_OUTPUT_URI']!r}: the Spark "
            "job on EMR Serverless writes where the run pods read, an s3:// prefix."
        )
    return FeatureEngine(
        **_env_vars_that_are_set(_OPTIONAL_FEATURE_ENGINE_SETTINGS | _OPTIONAL_EMR_SETTINGS)
    )


def current_deployment() -> str:
    deployment = os.environ.get("DAGSTER_DEPLOYMENT", "local")
    if deployment not in DEPLOYMENTS:
        raise ValueError(
            f"DAGSTER_DEPLOYMENT={deployment!r} is not one of {DEPLOYMENTS}; unset it for the "
            "embedded local defaults or set it to 'prod' with the S3/Postgres variables."
        )
    return deployment


@dataclass(frozen=True)
class LocalPaths:
    root: Path

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.sqlite"

    @property
    def object_store(self) -> Path:
        return self.root / "object-store"


def local_paths(root: str | os.PathLike[str] | None = None) -> LocalPaths:
    chosen = root or os.environ.get("LOCAL_DATA_DIR") or PROJECT_ROOT / ".local"
    return LocalPaths(Path(chosen).resolve())


def build_resources(
    deployment: str | None = None, *, local_root: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    deployment = deployment or current_deployment()
    # Definitions build here when a code location loads: say (never fail) when its environment
    # is not the locked one; the training asset refuses to train on it (resources/environment.py).
    warn_on_drift()
    if deployment == "local":
        paths = local_paths(local_root)
        storage = LocalObjectStorage(root=str(paths.object_store))
        return {
            "storage": storage,
            # The model registry lives in the same store as the checkpoints it names.
            "registry": ModelRegistryResource(storage=storage),
            "warehouse": Warehouse(backend="sqlite", sqlite_path=str(paths.warehouse)),
            "notifier": Notifier(**_env_vars_that_are_set(_OPTIONAL_NOTIFIER_SETTINGS)),
            "trainer": LocalTrainerLauncher(**_env_vars_that_are_set(_OPTIONAL_BUILD_SETTINGS)),
            "feature_engine": FeatureEngine(
                **_env_vars_that_are_set(_OPTIONAL_FEATURE_ENGINE_SETTINGS)
            ),
            "gpu_policy": gpu_policy(),
            "compute_prices": ComputePrices(**_env_vars_that_are_set(_OPTIONAL_PRICE_SETTINGS)),
        }
    if deployment == "prod":
        # Only production needs dagster-aws and dagster-k8s (with boto3 and the Kubernetes
        # client): importing them here keeps ~1.5 s out of every local process start.
        from dagster_aws.s3 import S3Resource

        from resources.storage.s3_resource import S3ObjectStorage
        from resources.trainer.k8s_launcher import K8sTrainerLauncher

        s3_storage = S3ObjectStorage(
            s3=S3Resource(
                region_name=dg.EnvVar("AWS_REGION"),
                **_env_vars_that_are_set(_OPTIONAL_S3_SETTINGS),
            ),
            bucket=dg.EnvVar("OBJECT_STORE_BUCKET"),
            prefix=dg.EnvVar("OBJECT_STORE_PREFIX"),
        )
        return {
            "storage": s3_storage,
            "registry": ModelRegistryResource(storage=promotion_storage(s3_storage)),
            "warehouse": Warehouse(
                backend="postgres",
                postgres_dsn=dg.EnvVar("WAREHOUSE_DSN"),
                **_env_vars_that_are_set({"postgres_schema": "WAREHOUSE_SCHEMA"}),
            ),
            "notifier": Notifier(**_env_vars_that_are_set(_OPTIONAL_NOTIFIER_SETTINGS)),
            "trainer": K8sTrainerLauncher(
                image=dg.EnvVar("TRAINER_IMAGE"),
                **trainer_shape_settings(),
                **_env_vars_that_are_set(_OPTIONAL_TRAINER_SETTINGS | _OPTIONAL_BUILD_SETTINGS),
            ),
            "feature_engine": production_feature_engine(),
            "gpu_policy": gpu_policy(),
            "compute_prices": ComputePrices(**_env_vars_that_are_set(_OPTIONAL_PRICE_SETTINGS)),
        }
    raise ValueError(f"Unknown deployment {deployment!r}; expected one of {DEPLOYMENTS}")
