"""One factory decides the environment; prod settings are EnvVars resolved only at run time."""

import dagster as dg
import pytest

from resources.factory import build_resources, current_deployment, local_paths
from resources.feature_engine import emr_start_job_run_params
from resources.storage.resource import LocalObjectStorage
from resources.storage.s3_resource import S3ObjectStorage
from resources.warehouse.resource import Warehouse
from training.store_args import store_from_args


def test_local_defaults_live_under_one_root(tmp_path):
    resources = build_resources("local", local_root=tmp_path)
    assert isinstance(resources["storage"], LocalObjectStorage)
    assert resources["storage"].root == str(tmp_path / "object-store")
    assert resources["warehouse"].backend == "sqlite"
    assert resources["warehouse"].sqlite_path == str(tmp_path / "warehouse.sqlite")


def test_local_root_follows_local_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCAL_DATA_DIR", str(tmp_path))
    assert local_paths().root == tmp_path.resolve()


def test_deployment_defaults_to_local_and_rejects_unknown(monkeypatch):
    monkeypatch.delenv("DAGSTER_DEPLOYMENT", raising=False)
    assert current_deployment() == "local"
    monkeypatch.setenv("DAGSTER_DEPLOYMENT", "stagging")
    with pytest.raises(ValueError, match="'stagging' is not one of"):
        current_deployment()


def test_prod_reads_every_location_and_secret_through_env_vars(monkeypatch):
    for name in (
        "S3_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "WAREHOUSE_SCHEMA",
    ):
        monkeypatch.delenv(name, raising=False)
    resources = build_resources("prod")
    storage, warehouse = resources["storage"], resources["warehouse"]
    assert isinstance(storage, S3ObjectStorage) and isinstance(warehouse, Warehouse)
    assert storage.bucket == dg.EnvVar("OBJECT_STORE_BUCKET")
    assert storage.prefix == dg.EnvVar("OBJECT_STORE_PREFIX")
    assert storage.s3.region_name == dg.EnvVar("AWS_REGION")
    # Unset optional settings stay unset: the pod's IAM role and AWS's own endpoints apply.
    assert storage.s3.aws_access_key_id is None and storage.s3.endpoint_url is None
    assert warehouse.postgres_dsn == dg.EnvVar("WAREHOUSE_DSN")


def test_prod_wires_optional_settings_when_present(monkeypatch):
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    storage = build_resources("prod")["storage"]
    assert storage.s3.endpoint_url == dg.EnvVar("S3_ENDPOINT_URL")
    assert storage.s3.aws_secret_access_key == dg.EnvVar("AWS_SECRET_ACCESS_KEY")


def test_prod_run_without_its_variables_fails_naming_them(monkeypatch):
    monkeypatch.delenv("WAREHOUSE_DSN", raising=False)
    warehouse = build_resources("prod")["warehouse"]
    with (
        pytest.raises(dg.DagsterError, match="WAREHOUSE_DSN"),
        dg.build_resources({"warehouse": warehouse}),
    ):
        pass


def test_the_trainer_addresses_the_bucket_in_the_run_workers_region(monkeypatch):
    """A trainer pod's environment need not hold AWS_REGION: the region travels as an argument,
    so the trainer's pyarrow filesystem is the run worker's region, not us-east-1."""
    monkeypatch.setenv("OBJECT_STORE_BUCKET", "models")
    monkeypatch.setenv("OBJECT_STORE_PREFIX", "ml/ctr")
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    storage = build_resources("prod")["storage"]
    with dg.build_resources({"storage": storage}) as built:
        args = built.storage.trainer_args()
    assert args[args.index("--s3-region") + 1] == "eu-west-2"
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert store_from_args(args).filesystem.region == "eu-west-2"


def test_prod_selects_the_spark_engine_on_emr_serverless_by_environment(monkeypatch):
    settings = {
        "FEATURE_ENGINE": "spark",
        "FEATURE_ENGINE_OUTPUT_URI": "s3://features-scratch/spark",
        "SPARK_EMR_APPLICATION_ID": "00fabc123",
        "SPARK_EMR_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/feature-job",
        "SPARK_EMR_ENTRY_POINT": "s3://code/assets/features/spark/job.py",
        "SPARK_EMR_SUBMIT_PARAMETERS": "--py-files s3://code/project.zip",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    engine = build_resources("prod")["feature_engine"]
    with dg.build_resources({"feature_engine": engine}) as built:
        resolved = built.feature_engine
    assert not resolved.runs_in_process
    assert (resolved.output_uri, resolved.emr_application_id) == (
        "s3://features-scratch/spark",
        "00fabc123",
    )
    # The request the Pipes client sends is one EMR Serverless accepts (botocore's own model).
    import botocore.session
    from botocore.validate import ParamValidator

    params = emr_start_job_run_params(
        resolved.emr_application_id,
        resolved.emr_execution_role_arn,
        resolved.emr_entry_point,
        resolved.emr_submit_parameters,
    )
    model = botocore.session.get_session().get_service_model("emr-serverless")
    shape = model.operation_model("StartJobRun").input_shape
    report = ParamValidator().validate({**params, "clientToken": "token"}, shape)
    assert not report.has_errors(), report.generate_report()
    assert params["jobDriver"]["sparkSubmit"]["entryPoint"].endswith("spark/job.py")


def test_prod_refuses_the_spark_engine_without_its_emr_settings(monkeypatch):
    monkeypatch.setenv("FEATURE_ENGINE", "spark")
    for name in ("SPARK_EMR_APPLICATION_ID", "SPARK_EMR_ENTRY_POINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPARK_EMR_EXECUTION_ROLE_ARN", "arn:aws:iam::123456789012:role/job")
    monkeypatch.setenv("SPARK_EMR_SUBMIT_PARAMETERS", "--py-files s3://code/project.zip")
    monkeypatch.setenv("FEATURE_ENGINE_OUTPUT_URI", "s3://scratch/spark")
    with pytest.raises(ValueError, match="needs SPARK_EMR_APPLICATION_ID, SPARK_EMR_ENTRY_POINT"):
        build_resources("prod")
    monkeypatch.setenv("SPARK_EMR_APPLICATION_ID", "00fabc123")
    monkeypatch.setenv("SPARK_EMR_ENTRY_POINT", "s3://code/job.py")
    monkeypatch.setenv("FEATURE_ENGINE_OUTPUT_URI", "/tmp/spark")
    with pytest.raises(ValueError, match=r"FEATURE_ENGINE_OUTPUT_URI='/tmp/spark'.*s3://"):
        build_resources("prod")


def test_the_local_engine_is_the_default_everywhere(monkeypatch):
    monkeypatch.delenv("FEATURE_ENGINE", raising=False)
    for deployment in ("local", "prod"):
        engine = build_resources(deployment)["feature_engine"]
        assert engine.runs_in_process
